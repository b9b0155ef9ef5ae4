"""`TransformerSpace`: the choices of a HAT SuperTransformer's elastic dimensions (pure data).

Two spaces, as data: ``hat-wmt`` (the paper's WMT'14 En–De space, for GPU use) and ``hat-tiny``
(the same shape at 1/4 width and 1/2 depth, to train on 2 CPU cores). They are *not* in the CNN
``get_space`` registry; :func:`get_transformer_space` names them.

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187), Sec. 3.1 (design space: embedding dim
{512, 640}, hidden dim {1024, 2048, 3072}, heads {4, 8}, decoder layers {1..6}, arbitrary
encoder–decoder attention over the last 1–3 encoder layers; encoder layers fixed at 6;
qkv dim fixed at 512), Sec. 3.3 (latency features) and Sec. 3.4 (evolutionary search: mutation
probability 0.3 in the released configs, uniform crossover).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from supernet.errors import ConfigError
from supernet.space.family import GeneCoding, PerConfigBatching
from supernet.space.transformer_config import FAMILY, TransformerConfig, describe_transformer

__all__ = [
    "HAT_FEATURES",
    "TRANSFORMER_SPACES",
    "TransformerSpace",
    "get_transformer_space",
    "list_transformer_spaces",
]

# HAT's latency-predictor features (released code: ``utils.get_feature_info``), in its order.
HAT_FEATURES = (
    "encoder_embed_dim",
    "encoder_layers",
    "encoder_ffn_dim_mean",
    "encoder_heads_mean",
    "decoder_embed_dim",
    "decoder_layers",
    "decoder_ffn_dim_mean",
    "decoder_heads_mean",
    "cross_attention_heads_mean",
    "cross_attention_encoder_layers_mean",
)
_CHOICES = (
    "encoder_embed_dims",
    "decoder_embed_dims",
    "encoder_layer_counts",
    "decoder_layer_counts",
    "ffn_dims",
    "head_counts",
    "cross_attention_encoder_layer_counts",
)


@dataclass(frozen=True)
class TransformerSpace(PerConfigBatching, GeneCoding):
    """Choices per elastic dimension of an encoder–decoder SuperTransformer.

    Satisfies the family protocol (:class:`supernet.space.family.Space`): batches are
    :class:`~supernet.space.family.ConfigList`, the genes are HAT's (:meth:`genes`).

    Attributes:
        name: the space's name, e.g. ``"hat-tiny"``.
        encoder_embed_dims / decoder_embed_dims: embedding (model) dim choices.
        encoder_layer_counts / decoder_layer_counts: active layer count choices; the largest is
            the SuperTransformer's number of layer slots.
        ffn_dims: FFN hidden dim choices (every layer, encoder and decoder).
        head_counts: attention head choices (self- and encoder–decoder attention).
        cross_attention_encoder_layer_counts: how many last encoder layers a decoder layer may
            attend to.
        qkv_dim: the fixed width of queries, keys and values (head dim = ``qkv_dim / heads``).
        max_positions: longest sequence (tokens) the positional embedding covers.
        dropout: the SuperTransformer's dropout; a SubTransformer scales it by its embedding
            dim over the largest (HAT's released ``calc_dropout``).
        reference: where the numbers come from.

    Raises:
        ConfigError: choices empty, unsorted or not positive; ``qkv_dim`` not divisible by a head
            count; a cross-attention count above the smallest encoder layer count.
    """

    name: str
    encoder_embed_dims: tuple[int, ...]
    decoder_embed_dims: tuple[int, ...]
    encoder_layer_counts: tuple[int, ...]
    decoder_layer_counts: tuple[int, ...]
    ffn_dims: tuple[int, ...]
    head_counts: tuple[int, ...]
    cross_attention_encoder_layer_counts: tuple[int, ...]
    qkv_dim: int
    max_positions: int = 256
    dropout: float = 0.1
    reference: str = ""

    def __post_init__(self) -> None:
        for field in _CHOICES:
            values = tuple(getattr(self, field))
            object.__setattr__(self, field, values)
            if not values or list(values) != sorted(set(values)) or values[0] < 1:
                raise ConfigError(
                    f"{field} must be non-empty, sorted, unique and positive, got {values}"
                )
        bad = [h for h in self.head_counts if self.qkv_dim % h]
        if bad:
            raise ConfigError(f"qkv_dim = {self.qkv_dim} is not divisible by head counts {bad}")
        if max(self.cross_attention_encoder_layer_counts) > min(self.encoder_layer_counts):
            raise ConfigError(
                f"cross_attention_encoder_layer_counts {self.cross_attention_encoder_layer_counts}"
                f" exceed the smallest encoder layer count {min(self.encoder_layer_counts)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout = {self.dropout} must be in [0, 1)")

    @property
    def family(self) -> str:
        return FAMILY

    @property
    def encoder_slots(self) -> int:
        """Encoder layer slots of the SuperTransformer (the largest layer count)."""
        return max(self.encoder_layer_counts)

    @property
    def decoder_slots(self) -> int:
        """Decoder layer slots of the SuperTransformer (the largest layer count)."""
        return max(self.decoder_layer_counts)

    def size(self) -> int:
        """Number of distinct SubTransformers (inactive layer slots do not count).

        An encoder of ``n`` layers has ``(|ffn| * |heads|) ** n`` variants, a decoder of ``n``
        layers ``(|ffn| * |heads|**2 * |cross layers|) ** n``; embedding dims multiply. For
        ``hat-wmt`` this is about 4.2e14, the paper's "10^15" (Sec. 3.1).
        """
        enc = len(self.ffn_dims) * len(self.head_counts)
        dec = enc * len(self.head_counts) * len(self.cross_attention_encoder_layer_counts)
        return (
            len(self.encoder_embed_dims)
            * sum(enc**n for n in self.encoder_layer_counts)
            * len(self.decoder_embed_dims)
            * sum(dec**n for n in self.decoder_layer_counts)
        )

    # --- canonical configs --------------------------------------------------------------------
    def _uniform(self, pick: int) -> TransformerConfig:
        e, d = self.encoder_slots, self.decoder_slots
        return TransformerConfig(
            encoder_embed_dim=self.encoder_embed_dims[pick],
            encoder_layers=self.encoder_layer_counts[pick],
            encoder_ffn_dim=(self.ffn_dims[pick],) * e,
            encoder_heads=(self.head_counts[pick],) * e,
            decoder_embed_dim=self.decoder_embed_dims[pick],
            decoder_layers=self.decoder_layer_counts[pick],
            decoder_ffn_dim=(self.ffn_dims[pick],) * d,
            decoder_heads=(self.head_counts[pick],) * d,
            cross_attention_heads=(self.head_counts[pick],) * d,
            cross_attention_encoder_layers=(self.cross_attention_encoder_layer_counts[pick],) * d,
        )

    def largest(self) -> TransformerConfig:
        """Every dimension at its largest choice (the whole SuperTransformer)."""
        return self._uniform(-1)

    def smallest(self) -> TransformerConfig:
        """Every dimension at its smallest choice."""
        return self._uniform(0)

    # --- sampling and evolution ---------------------------------------------------------------
    def _genes(self) -> list[tuple[str, int | None, tuple[int, ...]]]:
        """(field, slot or None, choices) for every gene, in HAT's gene order."""
        genes: list[tuple[str, int | None, tuple[int, ...]]] = [
            ("encoder_embed_dim", None, self.encoder_embed_dims),
            ("encoder_layers", None, self.encoder_layer_counts),
        ]
        for field in ("encoder_ffn_dim", "encoder_heads"):
            choices = self.ffn_dims if field.endswith("ffn_dim") else self.head_counts
            genes += [(field, i, choices) for i in range(self.encoder_slots)]
        genes += [
            ("decoder_embed_dim", None, self.decoder_embed_dims),
            ("decoder_layers", None, self.decoder_layer_counts),
        ]
        for field, choices in (
            ("decoder_ffn_dim", self.ffn_dims),
            ("decoder_heads", self.head_counts),
            ("cross_attention_heads", self.head_counts),
            ("cross_attention_encoder_layers", self.cross_attention_encoder_layer_counts),
        ):
            genes += [(field, i, choices) for i in range(self.decoder_slots)]
        return genes

    def _to_genes(self, config: TransformerConfig) -> list[int]:
        return [
            getattr(config, f) if i is None else getattr(config, f)[i] for f, i, _ in self._genes()
        ]

    def _from_genes(self, values: list[int]) -> TransformerConfig:
        data: dict[str, object] = {}
        for (field, slot, _), v in zip(self._genes(), values, strict=True):
            if slot is None:
                data[field] = int(v)
            else:
                data.setdefault(field, [])
                data[field].append(int(v))  # type: ignore[union-attr]
        return TransformerConfig.from_dict(data)

    def sample(self, rng: np.random.Generator) -> TransformerConfig:
        """A uniformly random config (every gene independent), drawn from ``rng`` only.

        Reference: HAT's released ``utils.sample_configs`` (one SubTransformer per training step).
        """
        return self._from_genes([int(rng.choice(c)) for _, _, c in self._genes()])

    def mutate(
        self, config: TransformerConfig, rng: np.random.Generator, *, prob: float = 0.3
    ) -> TransformerConfig:
        """Redraw each gene (embedding dim, layer count, every per-slot choice) with probability
        ``prob`` (HAT's released evolutionary search: ``mutation-prob: 0.3``).

        Raises:
            ConfigError: ``prob`` outside [0, 1], or ``config`` not of this space.
        """
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"mutate prob = {prob} must be in [0, 1]")
        self.validate(config)
        genes = self._genes()
        coins = rng.random(len(genes)) < prob
        fresh = [int(rng.choice(c)) for _, _, c in genes]
        values = self._to_genes(config)
        mixed = zip(values, fresh, coins, strict=True)
        return self._from_genes([f if m else v for v, f, m in mixed])

    def crossover(
        self, a: TransformerConfig, b: TransformerConfig, rng: np.random.Generator
    ) -> TransformerConfig:
        """Take every gene from ``a`` or ``b`` with equal probability (HAT Sec. 3.4).

        Raises:
            ConfigError: a parent not of this space.
        """
        self.validate(a)
        self.validate(b)
        pick = rng.random(len(self._genes())) < 0.5
        values = zip(self._to_genes(a), self._to_genes(b), pick, strict=True)
        return self._from_genes([u if p else v for u, v, p in values])

    def encode(self, configs: list[TransformerConfig]) -> np.ndarray:
        """HAT's 10 architecture features per config (:data:`HAT_FEATURES`), each divided by its
        value for :meth:`largest`, so features lie in (0, 1]: ``[N, 10]`` float32.

        Means are over the active layers only. Reference: HAT Sec. 3.3 and its released
        ``utils.get_config_features``.
        """
        rows = np.array([_features(c) for c in configs], dtype=np.float64).reshape(-1, 10)
        norm = np.array(_features(self.largest()), dtype=np.float64)
        return (rows / norm).astype(np.float32)

    # --- the family protocol (supernet.space.family.Space) -------------------------------------
    encoding_version = 1
    """Version of :meth:`encode`'s layout (HAT's 10 normalized features)."""

    def describe(self, config: TransformerConfig) -> str:
        """:func:`~supernet.space.transformer_config.describe_transformer` of ``config``."""
        return describe_transformer(config)

    def summary_map(self) -> tuple[np.ndarray, np.ndarray]:
        """No summary features: HAT's features are already numbers. Shapes: ``[10, 0]``, ``[0]``."""
        return np.zeros((len(HAT_FEATURES), 0), dtype=np.float32), np.zeros(0, dtype=np.float32)

    def genes(self) -> list[tuple[int, ...]]:
        """The choices of every gene, in HAT's gene order (for NSGA-II's integer coding)."""
        return [choices for _, _, choices in self._genes()]

    def to_genes(self, config: TransformerConfig) -> list[int]:
        """``config``'s value of every gene (:meth:`genes`' order)."""
        return self._to_genes(config)

    def from_genes(self, values: list[int]) -> TransformerConfig:
        """The config with these gene values (:meth:`genes`' order)."""
        return self._from_genes(values)

    def validate(self, config: TransformerConfig) -> TransformerConfig:
        """Check every value of ``config`` against this space; return it so calls chain.

        Raises:
            ConfigError: naming the field, the bad value and the allowed choices, e.g.
                ``encoder_ffn_dim[2] = 300 is not allowed in space 'hat-tiny'; choose from
                (256, 512, 768)``; or a config of another family (both names).
        """
        family = getattr(config, "family", type(config).__name__)
        if not isinstance(config, TransformerConfig):
            raise ConfigError(
                f"a {family!r} config was given to the {FAMILY!r} space {self.name!r}"
            )
        slots = {"encoder": self.encoder_slots, "decoder": self.decoder_slots}
        for field, slot, choices in self._genes():
            values = getattr(config, field)
            if slot is None:
                if values not in choices:
                    raise ConfigError(
                        f"{field} = {values} is not allowed in space {self.name!r}; "
                        f"choose from {choices}"
                    )
                continue
            side = "encoder" if field.startswith("encoder") else "decoder"
            if len(values) != slots[side]:
                raise ConfigError(
                    f"{field} has {len(values)} entries; space {self.name!r} has "
                    f"{slots[side]} {side} layer slots (one entry each)"
                )
            if values[slot] not in choices:
                raise ConfigError(
                    f"{field}[{slot}] = {values[slot]} is not allowed in space {self.name!r}; "
                    f"choose from {choices}"
                )
        return config


def _features(c: TransformerConfig) -> list[float]:
    return [
        c.encoder_embed_dim,
        c.encoder_layers,
        float(np.mean(c.active("encoder_ffn_dim"))),
        float(np.mean(c.active("encoder_heads"))),
        c.decoder_embed_dim,
        c.decoder_layers,
        float(np.mean(c.active("decoder_ffn_dim"))),
        float(np.mean(c.active("decoder_heads"))),
        float(np.mean(c.active("cross_attention_heads"))),
        float(np.mean(c.active("cross_attention_encoder_layers"))),
    ]


TRANSFORMER_SPACES: dict[str, TransformerSpace] = {
    "hat-wmt": TransformerSpace(
        name="hat-wmt",
        encoder_embed_dims=(512, 640),
        decoder_embed_dims=(512, 640),
        encoder_layer_counts=(6,),
        decoder_layer_counts=(1, 2, 3, 4, 5, 6),
        ffn_dims=(1024, 2048, 3072),
        head_counts=(4, 8),
        cross_attention_encoder_layer_counts=(1, 2, 3),
        qkv_dim=512,
        max_positions=1024,
        dropout=0.3,
        reference="HAT (arXiv 2005.14187) Sec. 3.1 / Sec. 4; released "
        "configs/wmt14.en-de/supertransformer/space0.yml (dropout 0.3)",
    ),
    # 1/4 of hat-wmt's widths and 1/2 of its depth, ratios kept (embed 4:5, FFN 1:2:3, head dim
    # 64 or 32): 3 encoder layers is the fewest that still allows attending to the last 3.
    "hat-tiny": TransformerSpace(
        name="hat-tiny",
        encoder_embed_dims=(128, 160),
        decoder_embed_dims=(128, 160),
        encoder_layer_counts=(3,),
        decoder_layer_counts=(1, 2, 3),
        ffn_dims=(256, 512, 768),
        head_counts=(2, 4),
        cross_attention_encoder_layer_counts=(1, 2, 3),
        qkv_dim=128,
        max_positions=256,
        dropout=0.1,
        reference="hat-wmt at 1/4 width and 1/2 depth, sized to train on 2 CPU cores",
    ),
}


def list_transformer_spaces() -> list[str]:
    """Names of the ``hat`` family's spaces."""
    return sorted(TRANSFORMER_SPACES)


def get_transformer_space(name: str) -> TransformerSpace:
    """The ``hat`` family space called ``name``.

    Raises:
        ConfigError: unknown name (naming it and the known ones).
    """
    if name not in TRANSFORMER_SPACES:
        raise ConfigError(
            f"unknown transformer space {name!r}; choose from {list_transformer_spaces()}"
        )
    return TRANSFORMER_SPACES[name]
