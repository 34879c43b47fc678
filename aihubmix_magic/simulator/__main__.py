"""`python -m aihubmix_magic.simulator`: serve the simulator on loopback until interrupted."""

from . import main

raise SystemExit(main())
