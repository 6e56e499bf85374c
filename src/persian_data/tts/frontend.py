"""The VITS text front end without torch: text -> symbol ids, as coqui-tts computes them.

coqui's `TTSTokenizer.text_to_ids` does, for the Kamtera voices: the text cleaner
(`basic_cleaners`: NFC, lower case, collapse whitespace), then the espeak phonemizer (cut the text
at punctuation, phonemize each run with `espeak-ng -q -b 1 -v fa --ipa=1`, drop language flags
such as "(en)", glue the punctuation back), then one id per symbol (symbols not in the vocabulary
are dropped), then a blank id between every two ids and at both ends (`add_blank`), then BOS/EOS
(`enable_eos_bos_chars`). coqui's tokenizer cannot be imported without torch, so the ONNX runtime
uses this twin.

Nothing here is guessed from coqui's defaults: `tts-export` reads every parameter (vocabulary in
id order, blank/BOS/EOS ids, the phonemizer's punctuation set and language, cleaner name) from the
loaded coqui tokenizer and records it in the export's `export.json`, and it refuses to export a
voice unless this front end gives exactly coqui's ids on a fixed set of Persian sentences.
Standard library only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import PersianDataError

# Cleaners with a twin here. Others (e.g. multilingual_cleaners with its symbol tables) are refused
# at export: the voice then serves through torch only.
_WHITESPACE = re.compile(r"\s+")
_LANGUAGE_FLAG = re.compile(r"\(.+?\)")  # espeak-ng marks switched words: "(en)fˈʊtbɔːl(fr)"


def _basic_cleaners(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    return _WHITESPACE.sub(" ", text.lower()).strip()


def _no_cleaner(text: str) -> str:
    return text


CLEANERS = {"basic_cleaners": _basic_cleaners, None: _no_cleaner}


class FrontEndError(PersianDataError):
    """The text front end cannot run (espeak-ng missing or failing, unsupported settings)."""


@dataclass(frozen=True)
class Mark:
    """A run of punctuation cut out of the text, and where it sat."""

    text: str
    position: str  # "begin" | "middle" | "end"


class PunctuationSplitter:
    """Cut text at runs of punctuation and glue the phonemized runs back (coqui's Punctuation)."""

    def __init__(self, marks: str) -> None:
        unique = "".join(dict.fromkeys(marks))
        self.pattern = re.compile(rf"(\s*[{re.escape(unique)}]+\s*)+")

    def split(self, text: str) -> tuple[list[str], list[Mark]]:
        found = list(self.pattern.finditer(text))
        if not found:
            return [text], []
        if len(found) == 1 and found[0].group() == text:
            return [], [Mark(text, "begin")]
        marks: list[Mark] = []
        for index, match in enumerate(found):
            run = match.group()
            if index == 0 and text.startswith(run):
                position = "begin"
            elif index == len(found) - 1 and text.endswith(run):
                position = "end"
            else:
                position = "middle"
            marks.append(Mark(run, position))
        parts: list[str] = []
        rest = text
        for index, mark in enumerate(marks):
            # split at the first occurrence of this run's exact text (coqui does the same)
            head, _, rest = rest.partition(mark.text)
            if head == "":
                continue
            parts.append(head)
            if index == len(marks) - 1 and rest:
                parts.append(rest)
        return parts, marks

    @staticmethod
    def join(parts: list[str], marks: list[Mark]) -> str:
        """The first string of coqui's Punctuation.restore(parts, marks)."""
        return _restore(list(parts), list(marks))[0]


def _restore(parts: list[str], marks: list[Mark]) -> list[str]:
    if not marks:
        return parts
    if not parts:
        return ["".join(m.text for m in marks)]
    mark = marks[0]
    if mark.position == "begin":
        return _restore([mark.text + parts[0], *parts[1:]], marks[1:])
    if mark.position == "end":
        return [parts[0] + mark.text, *_restore(parts[1:], marks[1:])]
    if len(parts) == 1:
        return _restore([parts[0] + mark.text], marks[1:])
    return _restore([parts[0] + mark.text + parts[1], *parts[2:]], marks[1:])


class EspeakPhonemizer:
    """IPA from the espeak-ng (or espeak) command, one process per run of text, as coqui runs it."""

    def __init__(self, language: str, punctuations: str, *, keep_punctuation: bool = True,
                 backend: str | None = None) -> None:
        self.language = {"en": "en-us", "zh-cn": "cmn"}.get(language, language)
        self.splitter = PunctuationSplitter(punctuations)
        self.keep_punctuation = keep_punctuation
        self.binary = shutil.which(backend) if backend else None
        self.binary = self.binary or shutil.which("espeak-ng") or shutil.which("espeak")
        if self.binary is None:
            raise FrontEndError(
                "espeak-ng is not installed (not on PATH) and the voice phonemizes with it; install it: "
                "apt-get install espeak-ng (Debian/Ubuntu), dnf install espeak-ng (Fedora), "
                "brew install espeak-ng (macOS)"
            )

    def _espeak(self, text: str) -> str:
        command = [self.binary, "-q", "-b", "1", "-v", self.language, "--ipa=1"]
        try:
            done = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, check=True,
                                  timeout=60)
        except subprocess.CalledProcessError as exc:
            raise FrontEndError(f"{' '.join(command)} failed (exit {exc.returncode}): "
                                f"{exc.stderr.decode('utf-8', 'replace').strip()[:300]}") from exc
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FrontEndError(f"could not run {self.binary}: {exc}") from exc
        out = ""
        for line in done.stdout.decode("utf-8").strip().split("\n"):
            line = line.strip()
            if line:
                out += _LANGUAGE_FLAG.sub("", line).strip()
        return out.replace("_", "")

    def phonemize(self, text: str) -> str:
        text = text.strip()
        if not self.keep_punctuation:
            return self._espeak(self.splitter.pattern.sub(" ", text).strip())
        parts, marks = self.splitter.split(text)
        return self.splitter.join([self._espeak(part) for part in parts], marks)


class TextFrontEnd:
    """text -> ids for one voice, from the `front_end` block of its export record."""

    def __init__(self, spec: dict[str, Any]) -> None:
        try:
            cleaner = spec["cleaner"]
            if cleaner not in CLEANERS:
                raise FrontEndError(f"text cleaner {cleaner!r} has no torch-free twin "
                                    f"(supported: {', '.join(str(c) for c in CLEANERS)})")
            self.clean = CLEANERS[cleaner]
            self.vocab: list[str] = list(spec["vocab"])
            self.char_to_id = {char: index for index, char in enumerate(self.vocab)}
            self.add_blank = bool(spec["add_blank"])
            self.use_eos_bos = bool(spec["use_eos_bos"])
            self.blank_id, self.bos_id, self.eos_id = spec.get("blank_id"), spec.get("bos_id"), spec.get("eos_id")
            self.phonemizer: EspeakPhonemizer | None = None
            if spec["use_phonemes"]:
                if spec["phonemizer"] != "espeak":
                    raise FrontEndError(f"phonemizer {spec['phonemizer']!r} has no torch-free twin (only espeak)")
                self.phonemizer = EspeakPhonemizer(spec["phoneme_language"], spec["punctuations"],
                                                   keep_punctuation=spec["keep_punctuation"],
                                                   backend=spec.get("espeak_backend"))
        except (KeyError, TypeError) as exc:
            raise FrontEndError(f"front end settings incomplete ({type(exc).__name__}: {exc})") from exc

    def symbols(self, text: str) -> str:
        """Cleaned (and phonemized) text, before the id lookup."""
        text = self.clean(text)
        return self.phonemizer.phonemize(text) if self.phonemizer else text

    def has_symbols(self, ids: list[int]) -> bool:
        """Whether `ids` hold anything besides blank/BOS/EOS."""
        return any(i not in (self.blank_id, self.bos_id, self.eos_id) for i in ids)

    def ids(self, text: str) -> list[int]:
        ids = [self.char_to_id[c] for c in self.symbols(text) if c in self.char_to_id]
        if self.add_blank:
            spread = [self.blank_id] * (2 * len(ids) + 1)
            spread[1::2] = ids
            ids = spread
        if self.use_eos_bos:
            ids = [self.bos_id, *ids, self.eos_id]
        return ids


def spec_from_coqui(tokenizer: Any, text_cleaner: str | None) -> dict[str, Any]:
    """The `front_end` block of an export record, read from a loaded coqui TTSTokenizer."""
    characters = tokenizer.characters
    spec: dict[str, Any] = {
        "cleaner": text_cleaner,
        "use_phonemes": bool(tokenizer.use_phonemes),
        "vocab": list(characters.vocab),
        "add_blank": bool(tokenizer.add_blank),
        "use_eos_bos": bool(tokenizer.use_eos_bos),
        "blank_id": tokenizer.blank_id,
        "bos_id": characters.bos_id if tokenizer.use_eos_bos else None,
        "eos_id": characters.eos_id if tokenizer.use_eos_bos else None,
        "phonemizer": None,
    }
    phonemizer = tokenizer.phonemizer
    if tokenizer.use_phonemes:
        if phonemizer is None or phonemizer.name() != "espeak":
            name = phonemizer.name() if phonemizer is not None else None
            raise FrontEndError(f"phonemizer {name!r} has no torch-free twin (only espeak)")
        spec.update(
            phonemizer="espeak",
            phoneme_language=phonemizer.language,
            punctuations=phonemizer._punctuator.puncs,
            keep_punctuation=bool(phonemizer._keep_puncs),
            espeak_backend=phonemizer.backend,
            espeak_version=phonemizer.backend_version,
        )
    return spec


def first_difference(ours: Iterable[int], theirs: Iterable[int]) -> str:
    a, b = list(ours), list(theirs)
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"first difference at position {index}: {x} vs {y} ({len(a)} vs {len(b)} ids)"
    return f"{len(a)} vs {len(b)} ids"
