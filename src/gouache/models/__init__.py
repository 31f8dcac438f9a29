"""Model management: `gouache pull` (download a diffusers pipeline from a model hub into GOUACHE_HOME/models
and add it to the pulled catalog), `gouache models` (list) and `gouache models rm` (remove a pulled model).

`patterns` is pure (what to download); `pull` talks to the hub and the disk; `inventory` lists."""
