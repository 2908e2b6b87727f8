"""The `denoise` part of `aekit demo`: the demo's denoiser on noisy held-out faces, against TV denoising."""

from __future__ import annotations

import numpy as np


def run(ctx):
    from skimage.restoration import denoise_tv_chambolle

    from aekit.demo import DemoSection
    from aekit.errors import AekitError
    from aekit.metrics import psnr, ssim
    from aekit.noise import parse_noise

    if ctx.denoiser is None:
        raise AekitError("the demo trained no denoiser (its noise model was not registered)")
    spec = ctx.noise or "gaussian:0.1"
    clean = ctx.hwc(ctx.images)
    rng = np.random.default_rng(ctx.seed)
    noisy = (parse_noise(spec)(clean.astype(np.float32) / 255, rng) * 255).round().astype(np.uint8)
    denoised = ctx.denoiser.denoise(noisy)
    reconstructed = ctx.denoiser.denoise(clean)  # the bottleneck's ceiling: its output for a clean input
    # a classical reference with a fixed, sensible weight (aekit eval --noise tunes it properly)
    tv = np.stack([(denoise_tv_chambolle(im.astype(np.float32) / 255, weight=0.08, channel_axis=-1) * 255)
                   .round().clip(0, 255).astype(np.uint8) for im in noisy])
    rows = []
    for name, images in (("noisy input", noisy), ("aekit denoiser", denoised), ("TV (Chambolle, weight 0.08)", tv),
                         ("aekit on the clean input (ceiling)", reconstructed)):
        rows.append([name, f"{psnr(images, clean).mean():.2f}", f"{ssim(images, clean).mean():.3f}"])
    show = min(8, len(clean))
    grid = ctx.save_grid("denoise.png", [noisy[:show], denoised[:show], tv[:show], clean[:show]],
                         ["noisy", "aekit", "TV", "clean"], title=f"noise {spec}")
    text = (f"The demo's model fine-tuned for a few epochs on `{spec}` noise (`aekit train --init MODEL --noise "
            f"{spec}`), run on {len(clean)} held-out faces with fresh noise. A bottleneck model can be no sharper "
            "than its own reconstruction (last row); the `unet` architecture has skip connections for real "
            "denoising. Try `aekit denoise noisy.png --model " + str(ctx.denoiser_dir or "MODEL") + "`.")
    return DemoSection(title="Denoising", text=text, images=[(grid, "noisy / aekit / TV / clean")],
                       tables=[(f"PSNR (dB) and SSIM on {len(clean)} held-out faces, noise {spec}",
                                ["method", "PSNR", "SSIM"], rows)])
