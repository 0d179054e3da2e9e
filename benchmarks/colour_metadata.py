"""What colour profiles, metadata and alpha cost and fix (issue 22).

    python benchmarks/colour_metadata.py [--kodak ../shared/data/kodak] [--images 4] [--tokens 64]
        [--exif-from ../shared/data/train/imagenet-sample]

1. **Colour error.** Kodak images (measurement only) are put into Display P3 and
   Adobe RGB values with the profile attached, as a phone or camera writes them.
   What a colour-managed viewer shows is compared with the sRGB original, as mean
   CIELAB ΔE (CIE76) and as PSNR in sRGB:
   - *dropped*: the pixels coded as they are and the profile lost (vtcodec before 2026-12-02);
   - *sRGB*: converted to sRGB with littleCMS before coding (the default);
   - *kept*: coded as they are, with the profile stored (``metadata="icc"``).
   Each once for the colour handling alone (no coding) and once end to end.
2. **Alpha.** Bytes of the alpha chunk (default and lossless) on three cut-outs made here (no
   cut-out photos ship with the data): an anti-aliased logo, a photo with a
   feathered oval mask, and a photo with a hard-edged silhouette mask. Beside
   them, the bytes of the file without alpha at the same token count.
3. **Real profiles**: the photos of a folder that carry an ICC profile, and how far
   their colours moved (ΔE76) when it was dropped, by profile.
4. **Metadata sizes** of the EXIF blocks in a folder of JPEGs, against the size
   of a vtcodec file of the same image, as the reason the default keeps none.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageDraw, ImageFilter

import vtcodec
from vtcodec import container
from vtcodec.imageio import prepare

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.icc import adobe_rgb, display_p3  # noqa: E402

SRGB = ImageCms.createProfile("sRGB")


def lab(pixels: np.ndarray) -> np.ndarray:
    """sRGB uint8 (..., 3) -> CIELAB (D65 white)."""
    c = pixels.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = linear @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def shown(image: Image.Image) -> np.ndarray:
    """What a colour-managed viewer shows, as sRGB pixels."""
    profile = image.info.get("icc_profile")
    rgb = image.convert("RGB")
    if profile:
        rgb = ImageCms.profileToProfile(rgb, ImageCms.ImageCmsProfile(io.BytesIO(profile)), SRGB, outputMode="RGB")
    return np.asarray(rgb)


def scores(reference: np.ndarray, seen: np.ndarray) -> tuple[float, float]:
    delta_e = float(np.linalg.norm(lab(reference) - lab(seen), axis=-1).mean())
    mse = np.mean((reference.astype(np.float64) - seen) ** 2)
    return delta_e, float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def colour_error(paths: list[Path], tokens: int) -> None:
    print("## Colour error against the sRGB original (mean ΔE76 / PSNR dB; what a colour-managed viewer shows)")
    print(f"{len(paths)} Kodak images; end to end at {tokens} tokens per tile with the default model and decoder\n")
    print("| profile | handling | colour only ΔE | colour only PSNR | end to end ΔE | end to end PSNR | file bytes |")
    print("|---|---|---|---|---|---|---|")
    for name, profile in (("Display P3", display_p3()), ("Adobe RGB", adobe_rgb())):
        target = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        rows: dict[str, list[tuple[float, float, float, float, int]]] = {"dropped": [], "sRGB": [], "kept": []}
        for path in paths:
            original = Image.open(path).convert("RGB")
            reference = np.asarray(original)
            tagged = ImageCms.profileToProfile(original, SRGB, target, outputMode="RGB")
            tagged.info["icc_profile"] = profile
            for handling, keep in (("dropped", None), ("sRGB", "none"), ("kept", "icc")):
                if keep is None:  # the old behaviour: the values taken as sRGB, the profile lost
                    alone = np.asarray(tagged)
                    data = vtcodec.compress(np.asarray(tagged), tokens)
                else:
                    prepared = prepare(tagged, keep)
                    alone = shown(_tag(prepared))
                    data = vtcodec.compress(prepared, tokens)
                decoded = shown(vtcodec.decompress(data))
                rows[handling].append((*scores(reference, alone), *scores(reference, decoded), len(data)))
        for handling, values in rows.items():
            m = np.mean(values, axis=0)
            print(f"| {name} | {handling} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} | {m[3]:.2f} | {m[4]:.0f} |")


def _tag(prepared) -> Image.Image:
    """The prepared pixels with the profile they keep, if any."""
    image = Image.fromarray(prepared.pixels)
    if prepared.extras.icc:
        image.info["icc_profile"] = prepared.extras.icc
    return image


def cutouts(kodak: Path) -> list[tuple[str, Image.Image]]:
    """Three cut-outs: a logo, a feathered oval photo and a hard-edged silhouette photo."""
    scale = 4
    logo = Image.new("RGBA", (512 * scale, 256 * scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.ellipse((20 * scale, 28 * scale, 220 * scale, 228 * scale), fill=(200, 30, 40, 255))
    draw.rectangle((250 * scale, 60 * scale, 490 * scale, 120 * scale), fill=(20, 60, 160, 255))
    draw.polygon(
        [(260 * scale, 230 * scale), (380 * scale, 140 * scale), (490 * scale, 230 * scale)], fill=(30, 140, 60, 255)
    )
    logo = logo.resize((512, 256), Image.Resampling.LANCZOS)  # anti-aliased edges
    photo = Image.open(kodak / "kodim23.png").convert("RGBA")
    w, h = photo.size
    oval = Image.new("L", photo.size, 0)
    ImageDraw.Draw(oval).ellipse((w * 0.15, h * 0.1, w * 0.85, h * 0.9), fill=255)
    feathered = photo.copy()
    feathered.putalpha(oval.filter(ImageFilter.GaussianBlur(12)))
    parrots = Image.open(kodak / "kodim23.png").convert("RGBA")
    rgb = np.asarray(parrots.convert("RGB")).astype(int)
    mask = ((rgb.max(axis=2) - rgb.min(axis=2)) > 60).astype(np.uint8) * 255  # the saturated birds
    silhouette = Image.fromarray(mask, "L").filter(ImageFilter.MedianFilter(9))
    parrots.putalpha(silhouette)
    return [("logo (anti-aliased)", logo), ("photo, feathered oval", feathered), ("photo, hard silhouette", parrots)]


def alpha_cost(kodak: Path, tokens: int) -> None:
    print(f"\n## Alpha: bytes of the alpha chunk ({tokens} tokens per tile)\n")
    print("| cut-out | size | file without alpha | alpha keep (within 2/255) | alpha lossless | largest error (keep) |")
    print("|---|---|---|---|---|---|")
    for name, image in cutouts(kodak):
        without = vtcodec.compress(image, tokens, alpha="drop")
        sizes, errors = [], []
        for mode in ("keep", "lossless"):
            data = vtcodec.compress(image, tokens, alpha=mode)
            sizes.append(len(container.unpack(data)[0].chunk(b"alph") or b""))
            decoded = np.asarray(vtcodec.decompress(data))[..., 3].astype(int)
            errors.append(int(np.abs(decoded - np.asarray(image)[..., 3]).max()))
        assert errors[1] == 0 and errors[0] <= 2
        w, h = image.size
        keep, exact = (f"{b} B ({8 * b / (w * h):.3f} bpp)" for b in sizes)
        print(f"| {name} | {w}x{h} | {len(without)} B | {keep} | {exact} | {errors[0]}/255 |")


def real_profiles(folder: Path) -> None:
    """How far real photos' colours moved when their profile was dropped: ΔE76 of the raw values against sRGB."""
    import warnings

    from vtcodec.errors import VtcodecWarning

    found: dict[str, list[float]] = {}
    unusable = 0
    for path in sorted(folder.iterdir()):
        try:
            with Image.open(path) as img:
                icc = img.info.get("icc_profile")
                if not icc:
                    continue
                img.load()
                name = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
                raw = np.asarray(img.convert("RGB"))
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", VtcodecWarning)
                    converted = prepare(img).pixels
                if any("colour profile" in str(w.message) for w in caught):
                    unusable += 1
                    continue
        except (OSError, ImageCms.PyCMSError):
            unusable += 1
            continue
        found.setdefault(name, []).append(float(np.linalg.norm(lab(raw) - lab(converted), axis=-1).mean()))
    print(f"\n## Embedded profiles in {folder}: colour shift when the profile is dropped (mean ΔE76)\n")
    print("| profile | images | mean ΔE | largest ΔE |")
    print("|---|---|---|---|")
    for name, values in sorted(found.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print(f"| {name} | {len(values)} | {np.mean(values):.2f} | {np.max(values):.2f} |")
    print(f"\n{unusable} profiles that littleCMS cannot use (those images are taken as sRGB, with a warning)")


def exif_sizes(folder: Path, tokens: int, limit: int = 1000) -> None:
    sizes, files = [], []
    for path in sorted(folder.iterdir())[:limit]:
        try:
            with Image.open(path) as img:
                exif = img.info.get("exif")
        except OSError:
            continue
        if exif:
            sizes.append(len(exif))
            files.append(path)
    print(f"\n## EXIF in {folder} ({limit} files at most)\n")
    if not sizes:
        print("no file carries EXIF")
        return
    sample = [len(vtcodec.compress(Image.open(p), tokens)) for p in files[:8]]
    print(
        f"{len(sizes)} files carry EXIF: median {np.median(sizes):.0f} bytes, max {max(sizes)}; "
        f"a vtcodec file of the first {len(sample)} of them at {tokens} tokens: median {np.median(sample):.0f} bytes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--exif-from", default=str(ROOT.parent / "shared" / "data" / "train" / "imagenet-sample"))
    args = parser.parse_args()
    kodak = Path(args.kodak)
    paths = sorted(kodak.glob("*.png"))[: args.images]
    if not paths:
        raise SystemExit(f"no images in {kodak}")
    colour_error(paths, args.tokens)
    alpha_cost(kodak, args.tokens)
    real_profiles(Path(args.exif_from))
    exif_sizes(Path(args.exif_from), args.tokens)


if __name__ == "__main__":
    main()
