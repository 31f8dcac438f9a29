"""gouache-mini: the embedded default model, shipped as a diffusers pipeline under `weights/`."""
