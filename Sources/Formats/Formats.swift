// Formats: reading model files without copying them, and refusing damaged ones with one clear line.
//
//   MappedFile          a file mmapped read-only; every TensorInfo keeps its file mapped
//   TensorInfo          name, TensorType, shape (outermost first), raw bytes in the file's layout
//   GGUFFile            GGUF v2/v3: metadata (GGUFValue), tensors; GGUFWriter writes v3 files
//   SafetensorsModel    .safetensors file, folder, or sharded folder (index.json); SafetensorsWriter
//   Llama2cCheckpoint   llama2.c .bin (legacy v0 and fp32 v1) exposed under HF tensor names
//   ModelConfig         llama / qwen2 / qwen3 shape, from config.json, GGUF metadata or llama2.c
//   TensorNames         GGUF ↔ HF tensor names; RopePermutation: interleaved ↔ rotate-half q/k rows
//   JSON                the one JSON parser (config.json, safetensors headers, index.json, and
//                       Tokenizers' tokenizer.json): members in file order, keys matched by bytes
//   FormatError         "<path>: <what is wrong> [at byte N]", always one line
//   OutputFile          atomic writes and folders, failures naming the path in POSIX words
//   DecodingErrorText   Codable's DecodingError as "field 'x': expected …, found …"
//   firstNonFinite      the first ±inf / NaN of a tensor (elements, or quantised blocks' scales)
//   JSON.text           compact JSON text (the fuzzer's JSON edits)
//
// RoPE layout by source: HF safetensors rotate-half; GGUF llama-arch interleaved (q/k rows permuted
// by llama.cpp's converter), GGUF qwen2/qwen3 rotate-half; llama2.c interleaved. `ropeInterleaved`
// on GGUFFile and Llama2cCheckpoint says which.
//
// Every length, count, offset and size read from a file is checked against the file before use,
// with overflow-checked arithmetic, so a damaged file throws a FormatError and never traps.
