// Formats: safetensors, GGUF, config.json, llama2.c checkpoints.
