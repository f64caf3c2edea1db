/*
 * cmd_mount.c — `sqlenvfs mount ROOT MOUNTPOINT [-f] [-d] [-s] [-o OPTIONS]`.
 *
 * Also reached without the subcommand, as mount.fuse3 runs it for
 * `mount -t fuse.sqlenvfs ROOT MNT` and /etc/fstab: `sqlenvfs ROOT MNT -o
 * OPTS` (main.c rewrites that to this command).
 */
#include "cli.h"
#include "commands.h"
#include "fs/mount.h"

#include <stdio.h>

#include "sqlenvfs/error.h"

int
cmd_mount(int argc, char **argv)
{
  gboolean foreground = FALSE, debug = FALSE, single_thread = FALSE;
  g_auto(GStrv) options = NULL;
  g_autoptr(GError) error = NULL;
  const char *root, *mountpoint;
  GOptionEntry entries[] = {
    { "foreground", 'f', 0, G_OPTION_ARG_NONE, &foreground,
      "Stay in the foreground, log to stderr", NULL },
    { "debug", 'd', 0, G_OPTION_ARG_NONE, &debug,
      "Foreground, verbose log and a trace of every FUSE request", NULL },
    { "single-thread", 's', 0, G_OPTION_ARG_NONE, &single_thread,
      "Serve every request from one thread", NULL },
    { "options", 'o', 0, G_OPTION_ARG_STRING_ARRAY, &options,
      "Mount options, comma-separated: allow_other, ro, noarchiver (another process "
      "archives this root), and what mount(8) passes",
      "OPTS" },
    { NULL }
  };
  SqlenvfsMountOptions opts = { 0 };

  if (!cli_parse(&argc, &argv, "[ROOT] MOUNTPOINT",
                 "Mount the project root as a filesystem: prod/ and dev/ images, snapshots/,\n"
                 "backups/, pitr/<time>/, ctl/ files that run operations, and status (JSON).\n"
                 "Runs as a daemon unless -f or -d; unmount with `fusermount3 -u MOUNTPOINT`.\n"
                 "ROOT defaults to --root, $SQLENVFS_ROOT, else the current directory.",
                 entries))
    return CLI_USAGE;

  if (argc == 3) {
    root = argv[1];
    mountpoint = argv[2];
  } else if (argc == 2) {
    root = cli_root_arg();
    mountpoint = argv[1];
  } else {
    return cli_usage("mount", argc < 2 ? "missing MOUNTPOINT" : "too many arguments");
  }

  opts.root = root;
  opts.mountpoint = mountpoint;
  opts.foreground = foreground;
  opts.debug = debug;
  opts.single_thread = single_thread;
  opts.options = options;
  if (!sqlenvfs_fs_mount(&opts, &error))
    return cli_fail("mount", g_steal_pointer(&error));
  return CLI_OK;
}
