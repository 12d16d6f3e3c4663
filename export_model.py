"""Export a run's model as a SavedModel, TFLite or ONNX graph of raw IS09 frames, with a model card.

    python export_model.py results/demo --format onnx --out exports/demo-onnx
    python export_model.py results/demo --format tflite --out exports/demo-tflite --check data/demo/features.npz
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import serattn
from serattn.deploy import export
from serattn.errors import ArgumentParser, run_main
from serattn.runs.reading import open_run


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a finished run folder of train_attention_lstm.py")
    parser.add_argument("--format", required=True, choices=export.FORMATS, help="the exported file's format")
    parser.add_argument("--out", required=True, help="folder to write the model and model_card.json to")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export folder")
    parser.add_argument("--check", metavar="FEATURES.npz",
                        help="also check the export against Keras on this feature file's test utterances (all "
                             "of them if it has no split), next to the probe utterances of 1 to 3000 frames")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for input errors")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    run = open_run(args.run_dir)
    export.check_exportable(run)
    export.check_out(args.out, args.overwrite)
    check = export.check_utterances(args.check) if args.check else None
    serattn.import_tensorflow()

    # Convert, check against Keras on probe utterances, then move into place.
    try:
        card = export.export_run(run, args.format, args.out, overwrite=args.overwrite, check=check)
    except export.ParityError as error:
        print(f"export_model.py: error: {error}; nothing was written", file=sys.stderr)
        return 1
    parity = card["parity"]
    outputs = ", ".join(f"{name} {parity[f'max_abs_diff_{name}']:.2g}" for name in ("probabilities", "attention",
                                                                                   "values")
                        if f"max_abs_diff_{name}" in parity)
    dims = f", values of {','.join(card['dimensions'])}" if card.get("dimensions") else ""
    print(f"{args.out}: {args.format} export of '{run.path}' ({len(card['classes'])} classes{dims}, "
          f"{len(card['features']['names'])} features per frame, normalization {card['normalization']['method']}); "
          f"max difference to Keras on {parity['utterances']} utterances of {parity['lengths'][0]}-"
          f"{parity['lengths'][-1]} frames: {outputs}")
    return 0


if __name__ == "__main__":
    run_main(main)
