"""Command line: score a reader study (thin wrapper over lesion_core.evaluation.readers)."""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    """Add the readers sub-command."""
    p = subparsers.add_parser(
        "readers", help="score readers' diagnoses against the run's model, as the Reader study page does",
        description="Each reader's sensitivity and specificity (Wilson 95% intervals) for one class against the "
                    "rest, the model's sensitivity at the reader's specificity on the same images, their paired "
                    "difference (bootstrap 95% interval over images) and a verdict: model, reader, or none when "
                    "the interval spans 0. FILE.csv: id,reader,diagnosis[,confidence,management,pass]; without "
                    "--reads, the reads the page stored in RUN/readers/.")
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--reads", metavar="FILE.csv", help="the readers' answers (default: RUN/readers/*.csv)")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--class", dest="class_name", metavar="C", help="the class scored against the rest "
                                                                 "(default: melanoma when the run has it)")
    p.add_argument("--json", action="store_true", help="print {split, class, n, readers: [...], summary, model}")
    p.set_defaults(func=cmd_readers)


def cmd_readers(args) -> int:
    from lesion_core.errors import DataError
    from lesion_core.evaluation import readers
    from lesion_core.evaluation.bootstrap import format_interval
    from lesion_core.metrics import to_jsonable

    model = readers.model_predictions(args.run, args.split)
    if model is None:
        raise DataError(f"{args.run}: no predictions_{args.split}.csv (is it a finished run folder?)")
    ids, labels, probs, names = model
    if args.reads:
        study, problems = readers.read_reads_table(args.reads, names), []
    else:
        study, problems = readers.load_study(args.run, names, ids)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if not study:
        raise DataError(f"no reads to score in {args.reads or args.run}")
    result = readers.score_study(study, ids, labels, probs, names, args.class_name, args.split)
    if args.json:
        print(json.dumps(to_jsonable(result), indent=2, allow_nan=False))
        return 0
    print(f"{result['class']} vs rest on {args.split} ({result['n']} images; model AUC "
          f"{'n/a' if result['model']['auc'] is None else format(result['model']['auc'], '.3f')})")
    for row in result["readers"]:
        sens, spec, model_sens, delta = (format_interval(row[key]) for key in (
            "sensitivity", "specificity", "model_sensitivity_at_reader_specificity", "delta"))
        print(f"  {row['reader']} pass {row['pass']} ({row['n']} images): sensitivity {sens}, specificity {spec}; "
              f"model at that specificity {model_sens}; model - reader {delta}: {row['verdict'] or 'n/a'}")
    return 0
