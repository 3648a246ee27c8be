"""Multi-frame vision-language models (LVLMs): an OpenAI-compatible client and in-process backends."""
