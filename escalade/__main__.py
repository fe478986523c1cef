from escalade.cli import main

raise SystemExit(main())
