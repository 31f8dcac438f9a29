// Strokes painted over an image: brush, eraser, size, invert, clear. The painted area is what gets edited.
// In "mask" mode it is exported as a PNG of the image's size whose alpha is 0 there (OpenAI's mask
// convention); in "markup" mode the strokes themselves are sent, as drawn, on a transparent PNG of the
// image's size (OpenAI's `markup`): the server repaints under them following the prompt.

export class MaskPainter {
  constructor(imageCanvas, maskCanvas, onChange = () => {}) {
    this.image = imageCanvas;
    this.mask = maskCanvas;
    this.onChange = onChange;
    this.tool = "brush";
    this.mode = "mask"; // or "markup"
    this.colour = "#ffd400"; // markup strokes
    this.size = 40; // on screen, in CSS pixels
    this.last = null;
    maskCanvas.addEventListener("pointerdown", (e) => this.down(e));
    maskCanvas.addEventListener("pointermove", (e) => this.move(e));
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      maskCanvas.addEventListener(type, () => this.up());
    }
  }

  /** Show `source` (an image or bitmap) and start an empty mask of its size. */
  load(source) {
    const width = source.naturalWidth || source.width;
    const height = source.naturalHeight || source.height;
    for (const canvas of [this.image, this.mask]) {
      canvas.width = width;
      canvas.height = height;
    }
    this.image.getContext("2d").drawImage(source, 0, 0);
    this.clear();
  }

  get loaded() {
    return this.image.width > 0 && this.image.height > 0;
  }

  point(event) {
    const rect = this.mask.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) * this.mask.width) / rect.width,
      y: ((event.clientY - rect.top) * this.mask.height) / rect.height,
      scale: this.mask.width / rect.width,
    };
  }

  down(event) {
    if (!this.loaded || event.button > 0) return;
    event.preventDefault();
    this.mask.setPointerCapture?.(event.pointerId);
    this.last = this.point(event);
    this.stroke(this.last, this.last);
  }

  move(event) {
    if (!this.last) return;
    const next = this.point(event);
    this.stroke(this.last, next);
    this.last = next;
  }

  up() {
    if (!this.last) return;
    this.last = null;
    this.onChange();
  }

  stroke(from, to) {
    const ctx = this.mask.getContext("2d");
    ctx.save();
    ctx.globalCompositeOperation = this.tool === "eraser" ? "destination-out" : "source-over";
    ctx.strokeStyle = this.mode === "markup" ? this.colour : "#ff1f5a";
    ctx.lineWidth = this.size * to.scale;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x + 0.01, to.y);
    ctx.stroke();
    ctx.restore();
  }

  clear() {
    this.mask.getContext("2d").clearRect(0, 0, this.mask.width, this.mask.height);
    this.onChange();
  }

  invert() {
    const { width, height } = this.mask;
    const flipped = new OffscreenCanvas(width, height);
    const ctx = flipped.getContext("2d");
    ctx.fillStyle = "#ff1f5a";
    ctx.fillRect(0, 0, width, height);
    ctx.globalCompositeOperation = "destination-out";
    ctx.drawImage(this.mask, 0, 0);
    const mctx = this.mask.getContext("2d");
    mctx.clearRect(0, 0, width, height);
    mctx.drawImage(flipped, 0, 0);
    this.onChange();
  }

  /** The share of the image that is painted, 0..1. */
  coverage() {
    if (!this.loaded) return 0;
    const { data } = this.mask.getContext("2d").getImageData(0, 0, this.mask.width, this.mask.height);
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 127) painted += 1;
    return painted / (data.length / 4);
  }

  /** The markup as OpenAI wants it: the strokes as drawn, transparent everywhere else. */
  toMarkupBlob() {
    return new Promise((resolve) => this.mask.toBlob(resolve, "image/png"));
  }

  /** The mask as OpenAI wants it: opaque where the image stays, transparent where it is edited. */
  toBlob() {
    const { width, height } = this.mask;
    const out = document.createElement("canvas");
    out.width = width;
    out.height = height;
    const ctx = out.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
    ctx.globalCompositeOperation = "destination-out";
    ctx.drawImage(this.mask, 0, 0);
    return new Promise((resolve) => out.toBlob(resolve, "image/png"));
  }
}
