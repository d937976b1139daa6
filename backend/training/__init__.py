"""LoRA training on the backend: a kohya-layout dataset, a diffusers+peft training loop on
a loaded model's components, and a kohya-format `.safetensors` file for the LoRA folder."""
