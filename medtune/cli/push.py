"""`medtune push RUN --repo OWNER/NAME`."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The run, the Hub repo and what goes on the card."""
    p.add_argument("run", help="a run folder from medtune train/demo")
    p.add_argument("--repo", required=True, help="the Hub repo id, owner/name")
    seen = p.add_mutually_exclusive_group()
    seen.add_argument("--public", dest="public", action="store_true",
                      help="publish: create the repo public (the default is private)")
    seen.add_argument("--private", dest="public", action="store_false", help="private (the default)")
    p.set_defaults(public=False)
    p.add_argument("--dry-run", action="store_true", help="build the folder and list what would go up; no upload")
    p.add_argument("--out", help="where to build the folder (default RUN/hub)")
    p.add_argument("--base-model", help="the base model's Hub id, when the run used a local folder")
    p.add_argument("--license", help="the card's license (default: the base model's, else other)")
    p.add_argument("--json", action="store_true")


def main(args: argparse.Namespace) -> int:
    """Build the Hub folder and upload it (or list it with --dry-run)."""
    from medtune.hub import push

    r = push(args.run, args.repo, private=not args.public, dry_run=args.dry_run, out=args.out,
             base_model=args.base_model, license=args.license)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"medtune: {verb} {len(r['files'])} files from {r['folder']} to "
          f"{'private' if r['private'] else 'PUBLIC'} {r['repo']}:")
    for name, size in r["files"]:
        print(f"  {size:>12,}  {name}")
    if r["uploaded"]:
        print(f"commit: {r['commit_url']}")
    return 0
