// Downloads of what the compute worker wrote (label PNG, overlay PNG, GeoJSON, measurements), as
// `blob:` URLs made in this page: nothing is uploaded. File names say which region they cover.

export function download(bytes, name, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = document.createElement("a");
  a.href = url; a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** `stem.ext` for a result covering the whole image, `stem_xX_yY_WxH.ext` for a region of it. */
export function exportName(result, image, ext) {
  const stem = result.name.replace(/\.[^.]+$/, "");
  const whole = result.x === 0 && result.y === 0 && result.width === image.width && result.height === image.height;
  return `${stem}${whole ? "" : `_x${result.x}_y${result.y}_${result.width}x${result.height}`}.${ext}`;
}
