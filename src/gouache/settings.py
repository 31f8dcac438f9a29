"""The one settings object. No other module reads the environment."""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Every GPT image model name the official SDK (3.57) knows. Each is served by the default model unless the
#: catalog maps it elsewhere (see `Settings.model_aliases`).
GPT_IMAGE_MODEL_NAMES: tuple[str, ...] = (
    "gpt-image-2",
    "gpt-image-2-2026-04-21",
    "gpt-image-1",
    "gpt-image-1-mini",
    "gpt-image-1.5",
    "chatgpt-image-latest",
    "gpt-image-2.5-sunburst",
    "gpt-image-2.5-sunburst-2026-09-08",
    "gpt-image-2.5-flare",
    "gpt-image-2.5-flare-2026-09-08",
    "gpt-image-2.6-sunburst",
    "gpt-image-2.6-flare",
)


class Settings(BaseSettings):
    """Configuration from `GOUACHE_*` environment variables (or keyword arguments in tests)."""

    model_config = SettingsConfigDict(
        env_prefix="GOUACHE_", env_file=None, extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Field(
        default=Path(".gouache"),
        # GOUACHE_HOME is the documented name; GOUACHE_DATA_DIR, the older one, still works (HOME wins).
        validation_alias=AliasChoices("GOUACHE_HOME", "GOUACHE_DATA_DIR"),
        description="Database, images, caches and pulled models live here.",
    )
    models_dir: Path | None = Field(
        default=None, description="Pulled models and their catalog; GOUACHE_HOME/models if unset."
    )
    hf_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("HF_ENDPOINT"),
        description="Model hub `gouache pull` downloads from (huggingface_hub's default if unset).",
    )
    hf_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("HF_TOKEN"),
        description="Hub token for gated or private repositories.",
    )
    catalog_file: Path | None = Field(
        default=None, description="A user catalog TOML merged over the shipped one."
    )
    default_model: str = Field(default="gouache-mini", description="Catalog name or a diffusers directory.")
    model_aliases: list[str] = Field(
        default_factory=lambda: list(GPT_IMAGE_MODEL_NAMES),
        description="API model names served by the default model.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; SQLite under data_dir if unset."
    )
    blob_url: str | None = Field(
        default=None,
        description="Where image bytes live: a directory or file:///dir URL (shared by every gateway of a "
        "cluster: NFS, CephFS...), or s3://bucket/prefix (an S3-compatible bucket; gouache[s3]); "
        "data_dir/blobs if unset.",
    )
    # --- the S3 blob store (blob_url s3://...): the standard AWS names work too ----------------------------
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("GOUACHE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        description="S3-compatible server (MinIO, Ceph, R2...); AWS S3 itself if unset.",
    )
    s3_region: str | None = Field(
        default=None,
        validation_alias=AliasChoices("GOUACHE_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
        description="The bucket's region (boto3's default if unset).",
    )
    s3_access_key_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("GOUACHE_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        description="S3 access key; boto3's chain (AWS profile, instance role) if unset.",
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("GOUACHE_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        description="The secret of s3_access_key_id.",
    )
    s3_session_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("GOUACHE_S3_SESSION_TOKEN", "AWS_SESSION_TOKEN"),
        description="Session token of temporary S3 credentials.",
    )
    url_secret: SecretStr | None = Field(
        default=None,
        description="Hex key that signs image links; made once under data_dir if unset. A cluster's "
        "gateways must share one (`gouache serve --ray` passes the launcher's on).",
    )
    torch_threads: int | None = Field(
        default=None,
        description="Threads for torch and OpenVINO; the cores shared out over the workers if unset.",
    )
    backend: Literal["auto", "pytorch", "openvino"] = Field(
        default="auto",
        description="Denoiser backend: openvino (PyTorch where unsupported), pytorch, or auto (= openvino).",
    )
    backend_precision: Literal["f32", "bf16"] = Field(
        default="f32",
        description="OpenVINO inference precision (bf16: faster on AVX512-BF16/AMX, less exact).",
    )
    device: str = Field(
        default="auto",
        description="Where models run: auto (CUDA, else Apple MPS, else the CPU), cpu, cuda, cuda:N or mps.",
    )
    dtype: str = Field(
        default="auto",
        description="Weights' dtype: auto (float16 on CUDA/MPS, else float32), float32, float16, bfloat16.",
    )
    planner_url: str | None = Field(
        default=None, description="OpenAI-compatible chat endpoint (…/v1) that writes Responses prompts."
    )
    planner_model: str = Field(default="gpt-4o-mini", description="Chat model name sent to planner_url.")
    planner_api_key: str | None = Field(default=None, description="Bearer key for planner_url.")
    preload: bool = Field(default=True, description="Load the default model at start-up.")
    playground: bool = Field(default=True, description="Serve the web playground at /.")
    queue_depth: int = Field(default=64, ge=1, description="Jobs waiting or running before 429s.")
    workers: int = Field(default=1, ge=1, description="Engine worker threads (one suits a CPU).")
    batch_window_ms: float = Field(
        default=20.0,
        ge=0,
        description="How long a worker waits for compatible requests to render as one batch (0: no wait).",
    )
    max_batch_images: int = Field(
        default=8, ge=1, description="Most images one batch renders together (1 turns batching off)."
    )
    prompt_cache_size: int = Field(
        default=256, ge=0, description="Prompt embeddings kept in memory (least recently used first out)."
    )
    result_cache: bool = Field(
        default=True, description="Serve a repeated request with an explicit seed from the store."
    )
    request_timeout_s: float | None = Field(
        default=600.0, gt=0, description="Default deadline of a request (queue + render), seconds."
    )
    grace_period_s: float = Field(
        default=30.0, ge=0, description="On SIGTERM, how long running requests may take to finish."
    )
    provenance: bool = Field(
        default=True, description="Sign every image with a C2PA manifest (keys under data_dir/provenance)."
    )
    c2pa_cert: Path | None = Field(
        default=None, description="C2PA signing certificate chain (PEM, leaf first); default: a local CA."
    )
    c2pa_key: Path | None = Field(default=None, description="The private key (PEM) of c2pa_cert.")
    metadata: bool = Field(
        default=True, description="Write generation parameters into files (PNG text chunks, EXIF)."
    )
    max_body_mb: float = Field(default=256.0, gt=0, description="Largest request body accepted.")
    max_upload_mb: float = Field(default=50.0, gt=0, description="Largest uploaded file accepted.")
    max_json_depth: int = Field(default=64, ge=2, description="Deepest nesting of a JSON body.")
    render_memory_mb: float = Field(
        default=1024.0, gt=0, description="Memory one request may need (n x size estimate) before a 400."
    )
    model_memory_mb: float | None = Field(
        default=None, gt=0, description="Memory for loaded models; half the machine's RAM if unset."
    )
    log_level: str = "info"

    # --- the browser boundary (api/browser_boundary.py) -----------------------------------------------------
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names (name or name:port) answered besides localhost, 127.0.0.1, [::1] and the "
        "bind address at the server's port; `*`: any, only with API keys on. Comma separated or a JSON list.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Web origins (scheme://host[:port]) that may call the API from a browser; `*`: any, only "
        "with API keys on. Comma separated or a JSON list.",
    )

    # --- Files and Batch APIs ------------------------------------------------------------------------------
    max_file_mb: float = Field(
        default=200.0,
        gt=0,
        description="Largest file accepted by POST /v1/files (batch input files included).",
    )
    file_sweep_interval_s: float = Field(
        default=3600.0, gt=0, description="How often expired files are removed (seconds)."
    )
    remote_image_urls: bool = Field(
        default=False,
        description="Let JSON edits fetch http(s) image_url references (data URLs always work).",
    )
    remote_image_max_mb: float = Field(default=20.0, gt=0, description="Largest remote image fetched.")
    remote_image_timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout of one remote image fetch."
    )
    batch_lane_images: int = Field(
        default=2,
        ge=1,
        description="Most images one batch-lane job renders together (at most max_batch_images): the longest "
        "an interactive request waits behind a running batch is one such job.",
    )
    batch_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Batch lines in the engine at once (max_batch_images if unset), so they batch together.",
    )
    batch_webhook_url: str | None = Field(
        default=None, description="POSTed batch.completed / batch.failed / batch.cancelled events."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Signs webhook events (Standard Webhooks, as OpenAI does): whsec_... or text.",
    )

    # --- operations: keys, limits, budgets, prices, moderation ------------------------------------------
    require_auth: bool = Field(
        default=False, description="Refuse requests without a valid key even before any key exists."
    )
    rate_limit_requests: int | None = Field(
        default=None, ge=1, description="Requests per window for each key (and anonymous callers)."
    )
    rate_limit_images: int | None = Field(default=None, ge=1, description="Images per window for each key.")
    rate_limit_window_s: float = Field(default=60.0, gt=0, description="Rate-limit window (seconds).")
    budget_usd: float | None = Field(
        default=None, ge=0, description="Global monthly budget in hosted-equivalent dollars."
    )
    budget_images: int | None = Field(default=None, ge=0, description="Global monthly budget in images.")
    budget_soft_fraction: float = Field(
        default=0.8, gt=0, le=1, description="Share of a budget at which the alert is sent."
    )
    budget_webhook_url: str | None = Field(default=None, description="POSTed a JSON alert on a soft limit.")
    prices_file: Path | None = Field(
        default=None, description="Price table TOML merged over the shipped one."
    )
    cpu_hour_usd: float = Field(default=0.04, ge=0, description="Local cost of one CPU-hour (dollars).")
    watts: float = Field(default=65.0, ge=0, description="Machine power draw while rendering (watts).")
    kwh_usd: float = Field(default=0.30, ge=0, description="Electricity price (dollars per kWh).")
    moderation_policy_file: Path | None = Field(
        default=None, description="A moderation policy TOML used instead of the shipped one."
    )

    @field_validator("allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """Lists from the environment: a JSON list, or names separated by commas (spaces ignored)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gouache.db').resolve()}"

    @property
    def model_memory_bytes(self) -> int:
        if self.model_memory_mb is not None:
            return int(self.model_memory_mb * 2**20)
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2
        except (ValueError, OSError, AttributeError):
            return 8 * 2**30

    @property
    def threads_per_worker(self) -> int:
        """Threads each engine worker's torch and OpenVINO may use: all workers together match the cores."""
        if self.torch_threads:
            return self.torch_threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    @property
    def backend_cache_dir(self) -> Path:
        """Converted models (OpenVINO IR and compiled blobs), kept across restarts."""
        return self.data_dir / "cache"

    @property
    def pulled_models_dir(self) -> Path:
        """Where `gouache pull` puts models, each in a folder named after it, beside `catalog.toml`."""
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def pulled_catalog_file(self) -> Path:
        """The catalog of pulled models, merged between the shipped catalog and GOUACHE_CATALOG_FILE."""
        return self.pulled_models_dir / "catalog.toml"

    @property
    def blob_dir(self) -> Path:
        """The blob directory: GOUACHE_BLOB_URL (a path or a ``file://`` URL), else data_dir/blobs. ValueError
        for a bucket (see `blob_bucket`) or another scheme."""
        if not self.blob_url:
            return self.data_dir / "blobs"
        parsed = urlsplit(self.blob_url)
        if parsed.scheme in ("", "file"):
            return Path(unquote(parsed.path) if parsed.scheme else self.blob_url).expanduser()
        if parsed.scheme == "s3":
            raise ValueError(f"GOUACHE_BLOB_URL {self.blob_url!r} is a bucket, not a directory")
        raise ValueError(
            f"GOUACHE_BLOB_URL {self.blob_url!r}: expected a directory, a file:// URL or s3://bucket/prefix"
        )

    @property
    def blob_bucket(self) -> tuple[str, str] | None:
        """(bucket, prefix) when GOUACHE_BLOB_URL is ``s3://bucket[/prefix]``, else None (a directory)."""
        if not self.blob_url or urlsplit(self.blob_url).scheme != "s3":
            _ = self.blob_dir  # a bad scheme raises here
            return None
        parsed = urlsplit(self.blob_url)
        if not parsed.netloc:
            raise ValueError(f"GOUACHE_BLOB_URL {self.blob_url!r}: name the bucket (s3://bucket/prefix)")
        return parsed.netloc, unquote(parsed.path).strip("/")
