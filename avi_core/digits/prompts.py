"""Digit prompts and the tiny deterministic text encoder of the digit model (spec section 12).

A prompt names up to three parts, each optional: the digit, the stroke thickness and the slant, e.g.
"a thick handwritten 3, slanted right", "a handwritten 7", "a thin handwritten digit". `build_prompt` writes
one, `parse_prompt` reads one back (any wording that contains the part words works: "3", "three", "thin",
"medium", "thick", "slanted left", "upright", "slanted right").

The encoder is a fixed table, not a network: the conditioning is TOKENS = 4 tokens of CONTEXT_DIM = 64
values, [start, digit, thickness, slant], each token the table row of its slot's value, where every slot has
a row for "not named". The rows are standard normal vectors drawn from a generator seeded with TABLE_SEED, so
the same prompt gives the same tensor bit for bit everywhere. The empty prompt (all parts not named) is the
unconditional conditioning that classifier-free guidance uses: the model was trained with each part dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..errors import ParameterError
from .style import SLANT, THICKNESS

CONTEXT_DIM = 64
TOKENS = 4
TABLE_SEED = 20231123
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SLANT_WORDS = {"left": "slanted left", "upright": "upright", "right": "slanted right"}


@dataclass(frozen=True)
class DigitPrompt:
    """The parts of a prompt; None where the part is not named."""

    digit: int | None = None
    thickness: str | None = None
    slant: str | None = None

    def text(self) -> str:
        """The canonical prompt text."""
        return build_prompt(self.digit, self.thickness, self.slant)


def _check(digit: int | None, thickness: str | None, slant: str | None) -> None:
    if digit is not None and (isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit <= 9):
        raise ParameterError(f"digit must be 0..9, got {digit!r}", reason="digit", name="digit", value=digit)
    if thickness is not None and thickness not in THICKNESS:
        raise ParameterError(
            f"thickness must be one of {', '.join(THICKNESS)}, got {thickness!r}", name="thickness", value=thickness
        )
    if slant is not None and slant not in SLANT:
        raise ParameterError(f"slant must be one of {', '.join(SLANT)}, got {slant!r}", name="slant", value=slant)


def build_prompt(digit: int | None = None, thickness: str | None = None, slant: str | None = None) -> str:
    """ "a thick handwritten 3, slanted right"; parts left as None are left out ("a handwritten digit")."""
    _check(digit, thickness, slant)
    words = ["a"]
    if thickness is not None:
        words.append(thickness)
    words.append("handwritten")
    words.append(str(digit) if digit is not None else "digit")
    text = " ".join(words)
    if slant is not None:
        text += ", " + SLANT_WORDS[slant]
    return text


def parse_prompt(text: str) -> DigitPrompt:
    """The parts a prompt names. Raises ParameterError when it names two different values of one part."""
    if not isinstance(text, str):
        raise ParameterError(f"a prompt must be text, got {type(text).__name__}", name="prompt", value=str(text))
    lower = text.lower()
    digits = {int(m) for m in re.findall(r"(?<![0-9])[0-9](?![0-9])", lower)}
    digits |= {DIGIT_WORDS.index(w) for w in re.findall(r"\b(" + "|".join(DIGIT_WORDS) + r")\b", lower)}
    thick = set(re.findall(r"\b(thin|medium|thick)\b", lower))
    slants = set()
    for word in re.findall(r"\b(left|right|upright)\b", lower):
        slants.add(word)
    for name, found in (("digit", digits), ("thickness", thick), ("slant", slants)):
        if len(found) > 1:
            raise ParameterError(
                f"the prompt {text!r} names more than one {name}: {', '.join(sorted(map(str, found)))}",
                reason="ambiguous",
                name=name,
                value=text,
            )
    return DigitPrompt(
        digits.pop() if digits else None, thick.pop() if thick else None, slants.pop() if slants else None
    )


def _table() -> dict[str, torch.Tensor]:
    generator = torch.Generator(device="cpu").manual_seed(TABLE_SEED)
    rows = {
        "start": 1,
        "digit": 11,
        "thickness": len(THICKNESS) + 1,
        "slant": len(SLANT) + 1,
    }
    return {slot: torch.randn((n, CONTEXT_DIM), generator=generator, dtype=torch.float32) for slot, n in rows.items()}


_TABLE = _table()


def token_ids(prompt: DigitPrompt) -> tuple[int, int, int]:
    """(digit row, thickness row, slant row) of the table; the last row of each slot is "not named"."""
    d = 10 if prompt.digit is None else prompt.digit
    t = len(THICKNESS) if prompt.thickness is None else THICKNESS.index(prompt.thickness)
    s = len(SLANT) if prompt.slant is None else SLANT.index(prompt.slant)
    return d, t, s


def encode_ids(ids: torch.Tensor) -> torch.Tensor:
    """Token rows [B, 3] (int64: digit, thickness, slant) -> conditioning [B, TOKENS, CONTEXT_DIM] float32."""
    ids = torch.as_tensor(ids, dtype=torch.int64)
    if ids.ndim != 2 or ids.shape[1] != 3:
        raise ParameterError(f"token ids must be [B, 3], got {tuple(ids.shape)}", name="ids", value=tuple(ids.shape))
    start = _TABLE["start"][0].expand(ids.shape[0], CONTEXT_DIM)
    return torch.stack(
        [start, _TABLE["digit"][ids[:, 0]], _TABLE["thickness"][ids[:, 1]], _TABLE["slant"][ids[:, 2]]], dim=1
    ).clone()


def encode(texts: str | list[str]) -> torch.Tensor:
    """Prompt text(s) -> conditioning [B, TOKENS, CONTEXT_DIM] float32 (B = 1 for one string)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    ids = torch.tensor([token_ids(parse_prompt(t)) for t in texts], dtype=torch.int64).reshape(-1, 3)
    return encode_ids(ids)
