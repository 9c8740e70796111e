"""`refinery ablate` and `refinery plans`: run an ablation plan, list the built-in plans."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli_options import InputsOption, SourcesOption, check_inputs_and_out, fail, input_pairs, named_pairs


def register(app: typer.Typer) -> None:
    @app.command()
    def ablate(
        plan: Annotated[str, typer.Option("--plan", help="Built-in plan (scale, quality, diversity, dedup) or YAML.")],
        out: Annotated[Path, typer.Option("--out", help="Ablation folder.")] = Path("runs/ablation"),
        inputs: InputsOption = None,
        sources: SourcesOption = None,
        eval_inputs: Annotated[
            list[str] | None,
            typer.Option(
                "--eval-input", help="NAME=PATH: evaluation-only text, scored as source NAME, never trained on."
            ),
        ] = None,
        cache_dir: Annotated[Path | None, typer.Option(help="Work cache (default OUT/cache).")] = None,
        seeds: Annotated[int | None, typer.Option(min=3, help="Override the plan: seeds 0..N-1.")] = None,
        tokens: Annotated[int | None, typer.Option(min=1, help="Override the plan's training tokens per arm.")] = None,
        preset: Annotated[str | None, typer.Option(help="Override the plan's model preset.")] = None,
        verbose: Annotated[bool, typer.Option(help="Show Prefect's own logs.")] = False,
    ) -> None:
        """Run an ablation plan: curate each arm, train it with several seeds, compare on one held-out set."""
        from flows.ablation_plan import PlanError, load_plan

        overrides: dict[str, Any] = {}
        if seeds is not None:
            overrides["seeds"] = seeds
        if tokens is not None:
            overrides["tokens"] = tokens
        if preset is not None:
            overrides["train"] = {"preset": preset}
        try:
            parsed = load_plan(plan, overrides)
        except PlanError as err:
            fail(str(err))
        pairs: list[list[Any]] = input_pairs(inputs, sources)
        extra: list[list[Any]] = named_pairs(eval_inputs, "--eval-input")
        if not verbose:  # before Prefect is first imported, which reads its settings once
            os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        from flows.ablate import sample_inputs

        pairs = pairs or sample_inputs()
        check_inputs_and_out(pairs, out, cache_dir, kind="ablation", extra=[p for _, p in extra])
        import json

        from rich.console import Console
        from rich.table import Table

        from flows.ablate import ablation_flow
        from flows.run_folder import RunFolderError

        console = Console(stderr=True)
        console.print(f"[bold]refinery ablate[/] plan [cyan]{parsed.name}[/] -> {out}")
        try:
            ablation_flow(parsed.model_dump(mode="json"), pairs, str(out), extra, str(cache_dir) if cache_dir else None)
        except (PlanError, RunFolderError) as err:  # what only the data or another run can tell
            fail(str(err))
        summary = json.loads((out / "summary.json").read_text())
        an = summary["analysis"]
        table = Table(title=f"Final validation bits per byte (mean ± sd over {len(summary['plan']['seeds'])} seeds)")
        table.add_column("arm")
        for s in an["sources"]:
            table.add_column(s, justify="right")
        cells = {(r["arm"], r["source"]): r for r in an["final"] if r["metric"] == "bpb"}
        verdicts = {(r["arm"], r["source"]): r for r in an["comparisons"] if r["metric"] == "bpb"}
        for arm in an["arms"]:
            row = [arm + (" (baseline)" if arm == summary["baseline"] else "")]
            for s in an["sources"]:
                c = cells.get((arm, s))
                v = verdicts.get((arm, s))
                mark = "" if v is None else (" ~" if v["verdict"] == "within seed noise" else " *")
                row.append("–" if c is None else f"{c['mean']:.4f} ± {c['sd']:.4f}{mark}")
            table.add_row(*row)
        # Wide enough for every source column: a piped console defaults to 80 columns and would cut arm names.
        Console(width=max(100, 24 + 20 * len(an["sources"]))).print(table)
        console.print("* differs from the baseline (p < alpha); ~ within seed noise")
        console.print(f"Report: {out / 'report' / 'index.html'}; results: {out / 'results.parquet'}")

    @app.command()
    def plans() -> None:
        """List the built-in ablation plans."""
        from flows.ablation_plan import builtin_plans, load_plan

        for name in builtin_plans():
            p = load_plan(name)
            arms = [a.name for a in p.arms(sources=None)]
            typer.echo(f"{name}: {len(arms)} arms x {len(p.seeds)} seeds ({', '.join(arms)}) - {p.description}")
