"""`python -m medtune` runs the command line."""

from medtune.cli import main

raise SystemExit(main())
