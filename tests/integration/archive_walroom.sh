#!/usr/bin/env bash
# archive_walbound.sh with [cache] min-free-bytes as the bound (see there).
BOUND=room exec bash "$SRCDIR/tests/integration/archive_walbound.sh"
