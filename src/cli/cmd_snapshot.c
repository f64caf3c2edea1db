/*
 * cmd_snapshot.c — `sqlenvfs snapshot`: a snapshot into backups/prod/snapshots/.
 */
#include "commands.h"
#include "storecmd.h"

int
cmd_snapshot(int argc, char **argv)
{
  return storecmd_create(SQLENVFS_KIND_SNAPSHOT, argc, argv);
}
