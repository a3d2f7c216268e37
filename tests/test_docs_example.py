"""The worked example of docs/extending.md is real: it loads, registers and trains.

The python block that follows the marker comment in the page is executed as a module, then
checked the way rtrbench checks a plugin (the registry's class checks, discovery through an
entry point, its parameters through a preset section) and trained for two epochs by the
shared trainer on the tiny hand-made data set of the tests.
"""

from __future__ import annotations

import math
import re
import sys
import tomllib
import types
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from rtrbench import registry
from rtrbench.methods import Batch, Method, MethodContext
from rtrbench.trainer import Trainer
from tests.test_trainer import context

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
MARKER = "<!-- tested: tests/test_docs_example.py -->"
MODULE = "rtrbench_docs_example"


def fenced_block(text: str, after: str, language: str) -> str:
    """The body of the first ```language block that follows `after`."""
    start = text.index(after)
    match = re.compile(rf"^```{language}[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M).search(text, start)
    assert match, f"no ```{language} block after {after!r} in {DOC}"
    return match.group(1)


def fenced_blocks(text: str, language: str) -> list[str]:
    """The bodies of all ```language blocks."""
    return re.compile(rf"^```{language}[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M).findall(text)


@pytest.fixture(scope="module")
def example() -> Iterator[types.ModuleType]:
    text = DOC.read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, f"{DOC} must mark exactly one tested block"
    module = types.ModuleType(MODULE)
    module.__file__ = str(DOC)
    sys.modules[MODULE] = module  # pydantic and entry points resolve classes through their module
    try:
        exec(compile(fenced_block(text, MARKER, "python"), f"{DOC}:example", "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[MODULE]


def method_class(module: types.ModuleType) -> type[Method]:
    found = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Method) and v is not Method]
    assert len(found) == 1, f"the example should define one method class, found {found}"
    return found[0]


def test_the_registry_accepts_the_example(example, monkeypatch):
    cls = method_class(example)
    registry._check_method_class(cls, cls.name)  # what discovery requires of a plugin

    # The page's pyproject snippet registers it under the name the class carries.
    text = DOC.read_text(encoding="utf-8")
    snippet = next(b for b in fenced_blocks(text, "toml") if '[project.entry-points."rtrbench.methods"]' in b)
    declared = tomllib.loads(snippet)["project"]["entry-points"]["rtrbench.methods"]
    assert declared == {cls.name: f"my_pkg.entropy:{cls.__name__}"}

    # Discovery through an entry point of the group, next to a built-in method.
    points = [
        EntryPoint("pce-gd", "rtrbench.methods.pce:PCEGD", registry.ENTRY_POINT_GROUP),
        EntryPoint(cls.name, f"{MODULE}:{cls.__name__}", registry.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: [p for p in points if p.group == group])
    clear = getattr(registry.discover, "cache_clear", lambda: None)  # discovery may be memoised
    clear()
    try:
        found = registry.discover()
        assert found.broken == {}
        assert found.methods[cls.name] is cls
        assert registry.get_method(cls.name) is cls
        assert cls.init_from in found.methods  # the method it fine-tunes from is registered too
    finally:
        clear()


def test_params_have_defaults_and_reject_typos(example):
    cls = method_class(example)
    defaults = cls.Params()
    assert defaults.weight > 0
    with pytest.raises(ValidationError):
        cls.Params(wieght=1.0)  # unknown keys (typos) are rejected


def test_batch_average_divides_both_terms_by_the_batch_size(example, tmp_path):
    cls = method_class(example)
    n, k, h, w = 3, 4, 8, 10
    logits = torch.randn(n, k, h, w, generator=torch.Generator().manual_seed(0))
    scribbles = torch.full((n, h, w), 255, dtype=torch.int64)
    scribbles[:, 2, 1:8] = 1
    batch = Batch(
        image=torch.rand(n, 3, h, w) * 255,
        scribbles=scribbles,
        gt=torch.zeros(n, h, w, dtype=torch.int64),
        roi=torch.ones(n, h, w, dtype=torch.bool),
        ids=[f"x{i}" for i in range(n)],
    )
    terms = {}
    for flag in (False, True):
        ctx = MethodContext(k, tuple(f"c{i}" for i in range(k)), torch.device("cpu"), tmp_path, flag)
        terms[flag] = cls(cls.Params(weight=0.5), ctx).loss(logits, batch)
    assert set(terms[False]) == {"ce", "entropy"}
    for name, value in terms[False].items():
        assert value.ndim == 0 and torch.isfinite(value) and value > 0, name
        assert terms[True][name] == pytest.approx(value.item() / n, rel=1e-6), name

    # The entropy term is a real loss: its gradient reaches the logits.
    logits.requires_grad_(True)
    method = cls(cls.Params(weight=0.5), MethodContext(k, tuple(f"c{i}" for i in range(k)), torch.device("cpu"), tmp_path))
    (grad,) = torch.autograd.grad(method.loss(logits, batch)["entropy"], logits)
    assert grad.abs().sum() > 0


@pytest.fixture
def one_thread():
    """One torch thread: on a busy small machine this tiny network trains several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_example_trains(example, pascal_tree, tmp_path, one_thread):
    cls = method_class(example)
    # Parameters through the method's preset scope, as `[methods.<name>.params]` gives them.
    overrides = {f"methods.{cls.name}.params.weight": 0.2, f"methods.{cls.name}.params.warmup_epochs": 2, "train.epochs": 2}
    ctx = context(pascal_tree, tmp_path, method=cls, **overrides)
    assert ctx.cfg.params == {"weight": 0.2, "warmup_epochs": 2}
    trainer = Trainer(ctx)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    result = trainer.run()
    log = ctx.logger

    epochs = ctx.cfg.train.epochs
    for key in ("train_loss", "train_ce_loss", "train_entropy_loss", "lr", "epoch_seconds"):
        series = log.series(key)
        assert [step for step, _ in series] == list(range(1, epochs + 1)), key
        assert all(math.isfinite(value) for _, value in series), key
    assert all(value > 0 for _, value in log.series("train_entropy_loss"))
    # the epoch hook's metric is logged: the weight ramps up over the two warm-up epochs
    assert log.series("entropy_weight") == [(1, pytest.approx(0.1)), (2, pytest.approx(0.2))]
    # the network was trained and evaluated
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, trainer.model.parameters()))
    assert 0.0 <= result.miou <= 1.0 and math.isfinite(log.series("val_miou")[-1][1])
