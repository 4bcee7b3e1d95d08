from lesion_core.cli import main

raise SystemExit(main())
