"""The report's tables as plain text (printed) and Markdown (report.md), from the report's JSON."""

from __future__ import annotations

from pathlib import Path


def _num(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _bytes(value) -> str:
    return "–" if value is None else f"{value:,.0f}"


def reconstruction_table(section: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["method", "bytes per image", "MSE", "PSNR (dB)", "SSIM"]
    rows = [[r["method"], _bytes(r["bytes_per_image"]), _num(r["mse"], 5), _num(r["psnr"], 2), _num(r["ssim"], 4)]
            for r in section["rows"]]
    return headers, rows


def _bytes1(value) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _matched_cell(value) -> str:
    return "–" if value is None else f"{value['psnr']:.2f} / {value['ssim']:.4f}"


def rate_distortion_table(section: dict) -> tuple[list[str], list[list[str]]]:
    """A codec's qualities: bytes a face, PSNR and SSIM, and each Pillow format's PSNR / SSIM at the same bytes."""
    labels = section.get("labels", {})
    formats = section["formats"]
    headers = ["method", "file bytes per image", "bitstream bytes", "PSNR (dB)", "SSIM"] + [
        f"{labels.get(f, f)} PSNR / SSIM at same bytes" for f in formats]
    rows = [[r["method"], _bytes1(r["file_bytes_per_image"]), _bytes1(r["bytes_per_image"]), _num(r["psnr"], 2),
             _num(r["ssim"], 4)]
            + [_matched_cell(r["matched"].get(f)) for f in formats] for r in section["rows"]]
    return headers, rows


def pillow_sweep_table(section: dict) -> tuple[list[str], list[list[str]]]:
    """Every Pillow format at every quality setting it was swept over."""
    labels = section.get("labels", {})
    headers = ["format", "quality", "bytes per image", "PSNR (dB)", "SSIM"]
    rows = [[labels.get(fmt, fmt), str(r["quality"]), _bytes1(r["bytes_per_image"]), _num(r["psnr"], 2), _num(r["ssim"], 4)]
            for fmt in section["formats"] for r in section["pillow"][fmt]["rows"]]
    return headers, rows


def _pillow_settings(section: dict) -> str:
    """``JPEG (optimize=True), WebP (method=6) and AVIF``: each format with the settings it was saved with."""
    labels = section.get("labels", {})
    parts = []
    for fmt in section["formats"]:
        settings = ", ".join(f"{k}={v}" for k, v in section["pillow"][fmt]["settings"].items())
        parts.append(labels.get(fmt, fmt) + (f" (`{settings}`)" if settings else ""))
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)


def _model_summary(model: dict) -> str:
    """``codec, 6 qualities, 128x4x4 latent`` for a codec; ``small, 16-d latent`` otherwise."""
    codec = model.get("codec")
    if codec:
        return (f"{model['architecture']}, {codec['qualities']} qualities, "
                f"{'x'.join(map(str, codec['latent_shape']))} latent")
    return f"{model['architecture']}, {model['latent_dim']}-d latent"


def denoising_table(section: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["noise", "method", "parameter", "PSNR (dB)", "SSIM"]
    rows = []
    for table in section["tables"]:
        for r in table["rows"]:
            rows.append([table["noise"], r["method"], r.get("parameter") or "", _num(r["psnr"], 2), _num(r["ssim"], 4)])
    return headers, rows


def features_table(section: dict) -> tuple[list[str], list[list[str]]]:
    subset = section.get("pixel_labels") or []
    headers = ["features", "dims", f"mean accuracy ({len(section['labels'])} labels)", "mean balanced accuracy"]
    if subset:
        headers.append(f"mean accuracy ({len(subset)} raw-pixel labels)")
    rows = []
    for r in section["rows"]:
        everything = r["labels"] == len(section["labels"])
        row = [r["method"], "–" if r["dims"] is None else str(r["dims"]),
               _num(r["mean_accuracy"], 3) if everything else "–", _num(r["mean_balanced_accuracy"], 3) if everything else "–"]
        if subset:
            row.append(_num(r.get("mean_accuracy_pixel_labels"), 3))
        rows.append(row)
    return headers, rows


def per_label_table(section: dict) -> tuple[list[str], list[list[str]]]:
    methods = [r["method"] for r in section["rows"]]
    headers = ["label"] + methods
    rows = []
    for label in section["labels"]:
        cells = [label]
        for r in section["rows"]:
            score = r["per_label"].get(label)
            cells.append(_num(score["accuracy"], 3) if score else "–")
        rows.append(cells)
    return headers, rows


def _text_columns(headers) -> int:
    """How many leading columns hold text (left-aligned); the numbers after them are right-aligned."""
    return 3 if headers[:2] == ["noise", "method"] else 1


def text_table(headers, rows) -> str:
    """Aligned columns: text left, numbers right."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]
    left = _text_columns(headers)

    def line(cells):
        return "  ".join(str(c).ljust(w) if i < left else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def markdown_table(headers, rows) -> str:
    escape = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    left = _text_columns(headers)
    out = ["| " + " | ".join(escape(h) for h in headers) + " |",
           "|" + "|".join("---" if i < left else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(escape(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _align(report: dict) -> dict:
    """The report's --align section (reports from before --align have none)."""
    return report.get("data", {}).get("align") or {}


def as_text(report: dict) -> str:
    """What `aekit eval` prints."""
    parts = [f"model {report['model']['path']} ({_model_summary(report['model'])})",
             f"evaluated on {report['data']['eval']['source']}: {report['data']['eval']['images']} images"
             + (f" ({_align(report)['summary']})" if _align(report).get("summary") else "")]
    train = report["data"].get("train")
    if train and train.get("images"):
        parts.append(f"training split {train['description']}: {train['images']} images")
    rec = report["reconstruction"]
    parts += ["", f"reconstruction ({rec['images']} images)", text_table(*reconstruction_table(rec))]
    if report.get("rate_distortion"):
        rd = report["rate_distortion"]
        parts += ["", f"rate-distortion ({rd['images']} faces; {rd['bytes']}; other formats read at the same bytes)",
                  text_table(*rate_distortion_table(rd))] + rd["notes"]
    if report.get("denoising_left_out"):
        parts += ["", f"denoising: left out ({report['denoising_left_out']})"]
    if report.get("denoising"):
        den = report["denoising"]
        parts += ["", f"denoising ({den['images']} images; parameters tuned on {den['tuning_images']} others)",
                  text_table(*denoising_table(den))]
        parts += [den["bm3d"]["line"]] if den.get("bm3d", {}).get("line") else []  # reports from before BM3D have none
        parts += [f"{table['noise']}: {note}" for table in den["tables"] for note in table.get("notes", [])
                  if note.startswith("BM3D ran on")]
    if report.get("features_left_out"):
        parts += ["", f"features: left out ({report['features_left_out']})"]
    if report.get("features"):
        feat = report["features"]
        parts += ["", f"features (linear probe: {feat['train_images']} training / {feat['test_images']} evaluation images)",
                  text_table(*features_table(feat))]
    return "\n".join(parts)


def as_markdown(report: dict) -> str:
    """report.md: the same tables, the data each number comes from, and the PNG grids (relative links)."""
    model, data = report["model"], report["data"]
    lines = ["# aekit evaluation report", "",
             f"- **model**: `{model['path']}` ({_model_summary(model)}, id `{model['model_id']}`)",
             f"- **trained on**: {data['model_training']}",
             f"- **evaluated on**: `{data['eval']['source']}`, {data['eval']['images']} images"
             + (" that the model never trained on" if data.get("overlap_checked") else
                f" (that the model never saw them could not be checked: "
                f"{data.get('training_data_missing') or 'the checkpoint records no training data'})")
             + (f"; {data['eval']['skipped']} unreadable ones skipped" if data['eval'].get('skipped') else "")]
    align = _align(report)
    if align.get("summary"):
        lines.append(f"- **faces**: {align['summary']}, aligned by `{align.get('aligner', '')}` before the model saw "
                     f"them; each face is one image with its photo's labels (`{align['placements']}`: the photo, face "
                     "and box of each)" + ("; skipped: images without a face or unreadable" if data['eval'].get('skipped') else ""))
    elif align.get("mode"):
        lines.append(f"- **faces**: `--align {align['mode']}`: each image as it is, resized")
    train = data.get("train")
    if train and train.get("images"):
        lines.append(f"- **baselines and probes fitted on**: {train['description']}, {train['images']} images")
    env = report["environment"]
    runtime = {"onnx": ", ONNX Runtime", "onnx-int8": ", ONNX Runtime int8", "torch": ", PyTorch"}.get(env.get("runtime"), "")
    lines += [f"- **run**: {report['created']}, aekit {env['aekit']}, torch {env['torch']}, {env['device']}{runtime}, "
              f"{env['cpu_count']} CPU cores, {report['elapsed_s']:.0f} s, seed {report['settings']['seed']}", ""]
    rec = report["reconstruction"]
    lines += ["## Reconstruction", "",
              f"Per image on the [0, 1] scale, then averaged over {rec['images']} images. "
              "SSIM: scikit-image `structural_similarity` (Gaussian window, sigma 1.5).", ""]
    if rec.get("notes"):
        lines += [f"- {n}" for n in rec["notes"]] + [""]
    lines += [markdown_table(*reconstruction_table(rec)), "", f"![original / reconstructions]({rec['grid']})", ""]
    if report.get("rate_distortion"):
        rd = report["rate_distortion"]
        lines += ["## Rate–distortion", "",
                  f"The codec at each of its {rd['qualities']} qualities on {rd['images']} faces: mean bytes a face of its "
                  "real bitstreams (the streams alone), PSNR (dB, mean of per-face PSNR on the [0, 1] scale) and SSIM of "
                  f"the faces as `aekit decompress` writes them. {_pillow_settings(rd)} are swept over their quality "
                  "settings (bytes: whole files, headers included) and read at the codec's bytes, linearly between "
                  "their two nearest settings; – where a sweep does not reach.", ""]
        lines += [f"- {n}" for n in rd["notes"]] + ([""] if rd["notes"] else [])
        lines += [markdown_table(*rate_distortion_table(rd)), "", f"![rate-distortion: bytes a face to PSNR and SSIM]({rd['plot']})",
                  "", "<details><summary>Pillow's sweeps</summary>", "", markdown_table(*pillow_sweep_table(rd)), "",
                  "</details>", ""]
    if report.get("denoising_left_out"):
        lines += ["## Denoising", "", f"Left out: {report['denoising_left_out']}.", ""]
    if report.get("denoising"):
        den = report["denoising"]
        lines += ["## Denoising", "",
                  f"PSNR and SSIM against the clean images, {den['images']} images. NL-means `h` and TV `weight` are multiples "
                  f"of each image's estimated noise sigma, tuned on {den['tuning_images']} other images of the same data "
                  "(the multiple shown).", "", markdown_table(*denoising_table(den)), ""]
        if den.get("bm3d", {}).get("line"):
            lines += [den["bm3d"]["line"] + ".", ""]
        for table in den["tables"]:
            notes = [f"- {table['noise']}: {note}" for note in table.get("notes", [])]
            lines += (notes + [""] if notes else []) + [f"![{table['noise']}: noisy / denoised / clean]({table['grid']})", ""]
    if report.get("features_left_out"):
        lines += ["## Features", "", f"Left out: {report['features_left_out']}.", ""]
    if report.get("features"):
        feat = report["features"]
        lines += ["## Features", "",
                  f"Linear probe (standardised LogisticRegression) per binary label, trained on {feat['train_images']} "
                  f"training-split images and scored on {feat['test_images']} evaluation images. PCA is fitted on the "
                  "training split.", "", markdown_table(*features_table(feat)), ""]
        for r in feat["rows"]:
            lines += [f"- {r['method']}: {n}" for n in r.get("notes", [])]
        if feat.get("skipped_labels"):
            lines.append("- labels left out: " + "; ".join(f"{k} ({v})" for k, v in feat["skipped_labels"].items()))
        lines += ["", "<details><summary>Accuracy per label</summary>", "", markdown_table(*per_label_table(feat)), "",
                  "</details>", ""]
    lines += ["Numbers: `report.json` beside this file.", ""]
    return "\n".join(lines)


def linked_images(markdown: str) -> list[str]:
    """The image links of a Markdown text (for checks)."""
    import re

    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


def missing_links(markdown_path) -> list[str]:
    """Image links of a report.md that do not resolve to files beside it."""
    path = Path(markdown_path)
    return [link for link in linked_images(path.read_text(encoding="utf-8")) if not (path.parent / link).is_file()]
