"""The Hugging Face model card (README.md) of an uploaded espnet2_sonar model.

    text = model_card(ModelCardFacts(repo_id="me/sonar-bio", method="SONAR continual pre-training", ...))

YAML front matter (license apache-2.0, library espnet, tags) then: what the model is, how it was
trained (the config's summary and the recorded inputs), the results file verbatim when one is
given (never numbers typed here), the files with sizes and sha256, how to load them, and the
versions ESPnet's pack recorded. Plain data in, text out: the facts are gathered by
``espnet2_sonar.bin.hf_upload``.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import yaml

TAGS = ["espnet", "audio", "beats", "sonar", "self-supervised-learning", "continual-learning"]


@dataclass
class ModelCardFacts:
    """What the card says.

    Attributes:
        repo_id: ``owner/name`` on the Hub.
        method: what trained the model, e.g. "SONAR continual pre-training".
        model: (name, value) rows about the architecture (encoder size, tokenizer, ...).
        training: (name, value) rows from the training config (epochs, batch, optimiser, ...).
        inputs: recorded training inputs {name: (path at training time, sha256)}.
        files: (file name, size in bytes, sha256) of every uploaded file but the card.
        versions: what ESPnet's pack recorded (python, torch, espnet, timestamp).
        results: markdown results to quote verbatim, or None.
        results_source: where ``results`` came from (shown with them).
    """

    repo_id: str
    method: str
    model: List[Tuple[str, str]] = field(default_factory=list)
    training: List[Tuple[str, str]] = field(default_factory=list)
    inputs: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    files: List[Tuple[str, int, str]] = field(default_factory=list)
    versions: Dict[str, str] = field(default_factory=dict)
    results: Optional[str] = None
    results_source: Optional[str] = None


def _table(header: Tuple[str, ...], rows) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |")
    return lines


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


LOAD_SNIPPET = """```python
from huggingface_hub import snapshot_download
from espnet2.main_funcs.pack_funcs import unpack
from espnet2_sonar.beats.interop import load_official
from espnet2_sonar.tasks.sonar import SonarTask

local = snapshot_download("{repo_id}")
# the encoder alone, in official BEATs format (microsoft/unilm BEATs loads it too)
encoder = load_official(f"{{local}}/encoder.pt").eval()
# the whole ESPnet model (encoder, predictor, heads, tokenizer), from the self-contained zip
files = unpack(f"{{local}}/packed.zip", "sonar_model")
model, train_args = SonarTask.build_model_from_file(files["train_config"], files["model_file"], device="cpu")
```"""


def model_card(facts: ModelCardFacts) -> str:
    """The card's markdown, front matter first."""
    front = {"license": "apache-2.0", "library_name": "espnet", "tags": TAGS, "pipeline_tag": "feature-extraction"}
    out = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {facts.repo_id.split('/')[-1]}", ""]
    out += [f"A BEATs audio encoder trained with **{facts.method}** by `espnet2_sonar`, an ESPnet plugin for "
            "continual self-supervised pre-training of audio encoders (SONAR: task-relevant stratified replay, "
            "dual-source self-distillation and an online clustered codebook).", ""]
    if facts.model:
        out += ["## Model", "", *_table(("", ""), facts.model), ""]
    out += ["## Training", ""]
    out += _table(("setting", "value"), facts.training) if facts.training else ["(no training config recorded)"]
    out.append("")
    if facts.inputs:
        out += ["Recorded inputs (paths on the training machine, content sha256):", ""]
        out += _table(("input", "path", "sha256"), [(k, p, s) for k, (p, s) in sorted(facts.inputs.items())])
        out.append("")
    out += ["## Results", ""]
    if facts.results:
        out += [f"Quoted from `{facts.results_source}`:" if facts.results_source else "Quoted verbatim:", "",
                facts.results.strip(), ""]
    else:
        out += ["No results file was given with this upload.", ""]
    out += ["## Files", "", *_table(("file", "size", "sha256"),
                                    [(n, _size(s), h) for n, s, h in facts.files]), ""]
    out += ["`packed.zip` is ESPnet's packed model (its `meta.yaml` records the versions below); it holds "
            "every file the config needs, so it unpacks into a working model anywhere.", ""]
    out += ["## How to load", "", "With `espnet2_sonar` installed (it pins ESPnet and torch):", "",
            LOAD_SNIPPET.format(repo_id=facts.repo_id), ""]
    if facts.versions:
        out += ["## Versions", "", *_table(("package", "version"), sorted(facts.versions.items())), ""]
    out += ["## License", "", "Apache-2.0, as ESPnet.", ""]
    return "\n".join(out)
