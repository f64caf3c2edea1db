/* The body shared by `backup` and `snapshot` (cmd_backup.c, cmd_snapshot.c). */
#pragma once

#include "sqlenvfs/store.h"

int storecmd_create(SqlenvfsCopyKind kind, int argc, char **argv);

/* Print one stored copy: its name, local time and databases with sizes. */
void storecmd_print_copy(const SqlenvfsStoredCopy *copy);
