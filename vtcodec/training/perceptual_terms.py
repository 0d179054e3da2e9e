"""The perceptual decoder loss: weighted MSE, ST-LPIPS, spectral and lattice distances, a patch discriminator."""

from __future__ import annotations

import torch

from vtcodec.errors import InputError
from vtcodec.perceptual import (
    PatchDiscriminator,
    hinge_discriminator_loss,
    hinge_generator_loss,
    lattice_distance,
    load_stlpips,
    spectral_amplitude_distance,
)
from vtcodec.training.config import DecoderTrainConfig
from vtcodec.training.losses import perceptual_windows


class PerceptualTerms:
    """ST-LPIPS and the optional patch discriminator of ``"loss": "perceptual"``, with the discriminator's optimizer."""

    def __init__(self, cfg: DecoderTrainConfig, weights: str | None, state: dict | None, device: torch.device) -> None:
        if weights is None:
            raise InputError("a perceptual loss needs --perceptual-weights (the stlpips-pytorch 0.0.2 wheel)")
        self.cfg = cfg
        self.lpips = load_stlpips(weights, cfg.lpips_net).to(device)
        self.disc, self.disc_opt = None, None
        if cfg.gan_weight > 0:
            self.disc = PatchDiscriminator().to(device)
            self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.9))
            if state is not None and "discriminator" in state:
                self.disc.load_state_dict(state["discriminator"])
                self.disc_opt.load_state_dict(state["discriminator_optimizer"])
        self._windows: tuple[torch.Tensor, torch.Tensor] | None = None

    def loss(self, mse: torch.Tensor, rec: torch.Tensor, crops: torch.Tensor, step: int, gen: torch.Generator):
        """The decoder's loss: weighted MSE, ST-LPIPS, spectral and lattice distances, and the generator's
        hinge loss (from ``gan_start_step``)."""
        cfg = self.cfg
        seen, target = perceptual_windows(rec, crops, cfg.perceptual_crop, gen)
        self._windows = (seen, target)
        loss = cfg.mse_weight * mse + cfg.lpips_weight * self.lpips(seen.clamp(0, 1), target).mean()
        if cfg.spectral_weight > 0:
            loss = loss + cfg.spectral_weight * spectral_amplitude_distance(seen, target, cfg.spectral_patch).mean()
        if cfg.lattice_weight > 0:  # on the whole crops, whose pixel (0, 0) is a tile's
            lattice = lattice_distance(rec, crops, cfg.lattice_period, cfg.lattice_window)
            loss = loss + cfg.lattice_weight * lattice.mean()
        if self.disc is not None and step >= cfg.gan_start_step:
            loss = loss + cfg.gan_weight * hinge_generator_loss(self.disc(seen))
        return loss

    def discriminator_step(self) -> None:
        """One step of the discriminator on the windows of the last :meth:`loss` (after the decoder's step)."""
        if self.disc is None or self._windows is None:
            return
        seen, target = self._windows
        disc_loss = hinge_discriminator_loss(self.disc(target), self.disc(seen.detach()))
        self.disc_opt.zero_grad(set_to_none=True)
        disc_loss.backward()
        self.disc_opt.step()

    def state(self) -> dict:
        if self.disc is None:
            return {}
        return {"discriminator": self.disc.state_dict(), "discriminator_optimizer": self.disc_opt.state_dict()}
