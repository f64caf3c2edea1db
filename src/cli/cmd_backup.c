/*
 * cmd_backup.c — `sqlenvfs backup`: a full backup into backups/prod/daily/.
 */
#include "commands.h"
#include "storecmd.h"

int
cmd_backup(int argc, char **argv)
{
  return storecmd_create(SQLENVFS_KIND_BACKUP, argc, argv);
}
