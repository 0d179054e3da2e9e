"""The tokenizer's hyper-parameters (``TokenizerConfig``), as model files and training configs store them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar


@dataclass(frozen=True)
class TokenizerConfig:
    """Hyper-parameters that define a ConvTokenizer; stored beside its weights."""

    weights_dtype: ClassVar[str] = "float16"  # how a model file stores the weights

    architecture: str = "conv-tokenizer"
    tile_size: int = 128
    max_tokens: int = 256
    fsq_levels: tuple[int, ...] = (8, 8, 5, 5)
    channels: tuple[int, ...] = (32, 64, 128, 256)
    grid_channels: int = 48
    layout: str = "grid"
    blocks_per_stage: int = 1
    encoder_blocks: int | None = None
    decoder_blocks: int | tuple[int, ...] | None = None  # per decoder stage (coarsest first), or one for all
    decoder_hidden: tuple[int, ...] | None = None  # inner width of each decoder stage's residual blocks
    decoder_attention: int = 0  # self-attention blocks after the first decoder stage's residual blocks
    decoder_channels: tuple[int, ...] | None = None  # the decoder's widths, finest first (None: ``channels``)
    cell_size: int = 32
    cell_order: str = "raster"
    fine_groups: int = 0

    def stage_blocks(self, part: str) -> int:
        """Residual blocks per resolution stage of the ``encoder`` (or of a uniform ``decoder``)."""
        blocks = self.encoder_blocks if part == "encoder" else self.decoder_blocks
        if isinstance(blocks, tuple):
            raise ValueError("the decoder's blocks differ per stage; use decoder_stage_blocks()")
        return self.blocks_per_stage if blocks is None else blocks

    def decoder_stage_blocks(self) -> tuple[int, ...]:
        """Residual blocks of each decoder stage, coarsest first."""
        if isinstance(self.decoder_blocks, tuple):
            if len(self.decoder_blocks) != len(self.channels):
                raise ValueError(f"decoder_blocks needs one count per stage ({len(self.channels)})")
            return self.decoder_blocks
        return (self.stage_blocks("decoder"),) * len(self.channels)

    def decoder_widths(self) -> tuple[int, ...]:
        """The decoder's feature widths, finest first as ``channels``: ``decoder_channels`` or the encoder's."""
        if self.decoder_channels is None:
            return self.channels
        if len(self.decoder_channels) != len(self.channels) or min(self.decoder_channels) < 1:
            raise ValueError(f"decoder_channels needs one positive width per stage ({len(self.channels)})")
        return self.decoder_channels

    def decoder_stage_hidden(self) -> tuple[int, ...]:
        """Inner width of each decoder stage's residual blocks, coarsest first."""
        widths = tuple(reversed(self.decoder_widths()))
        if self.decoder_hidden is None:
            return widths
        if len(self.decoder_hidden) != len(widths) or min(self.decoder_hidden) < 1:
            raise ValueError(f"decoder_hidden needs one positive width per stage ({len(widths)})")
        return self.decoder_hidden

    def to_dict(self) -> dict:
        """The stored form; ``decoder_channels`` only when set, so that earlier files' configs are unchanged."""
        data = asdict(self)
        if data["decoder_channels"] is None:
            del data["decoder_channels"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TokenizerConfig:
        data = dict(data)
        for key in ("fsq_levels", "channels", "decoder_blocks", "decoder_hidden", "decoder_channels"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


DECODER_ARCHITECTURE = ("decoder_blocks", "decoder_hidden", "decoder_attention", "decoder_channels")  # decoder-only
