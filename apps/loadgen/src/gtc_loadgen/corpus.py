"""The curator: turns a folder of documents into conversation seeds.

A document is a Markdown or text file whose first ``# `` line is its title and
whose ``## `` lines name its sections. Each seed keeps the whole document (it
becomes the conversation's system prompt, the long shared prefix that KV-aware
routing can reuse), its sections and its most telling words, which the
follow-up writer draws on so that questions stay on topic.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

# Six letters or more: the words that name things (routing, prefill, replica).
_WORD = re.compile(r"[A-Za-z][A-Za-z\-]{5,}")
_STOP = frozenset(
    """about above after again against also among another because been before being below between
    both could does doing down during each either every from further have having here however into
    itself just know like made make many more most much must need never often only other others
    over same should since some such than that their them then there these they this those through
    under until very what when where which while will with within without would your yours
    across along already always around away back become becomes best better came come each else
    even ever first gets give given goes good great help keep last less lets little long look
    mean means might next once part place point rather really right said says seem seen shall
    show shows side small still take takes tell than thing things think three time times today
    turn turns upon used uses using want well went were whole whose word words work works year
    years hundred thousand second seconds minute minutes people different another because though
    whether number numbers enough single eight four five seven three million billion""".split()
)


class CorpusError(ValueError):
    """The corpus folder or seeds file cannot be used."""


@dataclass(frozen=True)
class Seed:
    id: str
    title: str
    text: str
    sections: tuple[str, ...]
    keywords: tuple[str, ...]

    @property
    def words(self) -> int:
        return len(self.text.split())

    def system_prompt(self, session_line: str = "", related: tuple[Seed, ...] = ()) -> str:
        """The conversation's long context.

        ``session_line`` comes first on purpose: it makes the prompt's first KV
        block unique to the conversation, so a conversation's first turn is a
        cold prefill even when another conversation drew the same document,
        and only its own follow-ups can reuse its cache (the effect the demo
        shows).
        """
        parts = [
            f"{session_line}\n"
            "You are the assistant at the DigitalOcean booth. Answer questions about the "
            "reference document below, briefly and precisely.\n\n"
            f"=== {self.title} ===\n{self.text}"
        ]
        # Related documents lengthen the context to a few thousand tokens.
        parts.extend(f"=== Related reading: {r.title} ===\n{r.text}" for r in related)
        return "\n\n".join(parts)

    def opening_question(self) -> str:
        if self.sections:
            return f"I just read \"{self.title}\". Can you summarise the part \"{self.sections[0]}\" for me?"
        return f"I just read \"{self.title}\". Can you summarise it for me?"


def curate_text(doc_id: str, raw: str) -> Seed:
    lines = raw.strip().splitlines()
    title = doc_id.replace("-", " ").replace("_", " ").title()
    if lines and lines[0].startswith("# "):
        title = lines[0][2:].strip()
        lines = lines[1:]
    body = "\n".join(lines).strip()
    sections = tuple(line[3:].strip() for line in lines if line.startswith("## "))
    counts = Counter(w.lower() for w in _WORD.findall(body) if w.lower() not in _STOP)
    keywords = tuple(word for word, _count in counts.most_common(24))
    if len(body.split()) < 50:
        raise CorpusError(f"document '{doc_id}' is too short to seed a conversation ({len(body.split())} words)")
    return Seed(id=doc_id, title=title, text=body, sections=sections, keywords=keywords)


def curate_folder(folder: str | Path) -> list[Seed]:
    path = Path(folder)
    if not path.is_dir():
        raise CorpusError(f"corpus folder {path} does not exist")
    files = sorted(p for p in path.iterdir() if p.suffix in (".md", ".txt") and p.is_file())
    seeds = [curate_text(p.stem, p.read_text(encoding="utf-8")) for p in files if p.stem.lower() != "readme"]
    if not seeds:
        raise CorpusError(f"corpus folder {path} holds no .md or .txt documents")
    return seeds


def default_corpus_dir() -> Path:
    return Path(str(resources.files("gtc_loadgen") / "corpus"))


def load_seeds(source: str | Path | None) -> list[Seed]:
    """Seeds from a folder of documents, a seeds JSON written by ``curate``, or the built-in corpus."""
    if not source:
        return curate_folder(default_corpus_dir())
    path = Path(source)
    if path.is_dir():
        return curate_folder(path)
    if path.suffix == ".json" and path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        try:
            seeds = [
                Seed(id=d["id"], title=d["title"], text=d["text"],
                     sections=tuple(d.get("sections", ())), keywords=tuple(d.get("keywords", ())))
                for d in data["seeds"]
            ]
        except (KeyError, TypeError) as exc:
            raise CorpusError(f"{path}: not a seeds file ({exc})") from exc
        if not seeds:
            raise CorpusError(f"{path}: holds no seeds")
        return seeds
    raise CorpusError(f"corpus {path} is neither a folder of documents nor a seeds .json file")


def write_seeds(seeds: list[Seed], out: str | Path) -> None:
    doc = {"seeds": [asdict(s) for s in seeds]}
    Path(out).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
