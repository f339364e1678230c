import Formats
import Tokenizers
