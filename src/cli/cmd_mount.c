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
#include "sqlenvfs/remote.h"
#include "sqlenvfs/util.h"

#include <string.h>

int
cmd_mount(int argc, char **argv)
{
  gboolean foreground = FALSE, debug = FALSE, single_thread = FALSE, options_refused = FALSE;
  g_auto(GStrv) options = NULL;
  g_autoptr(GError) error = NULL;
  const char *root, *mountpoint;
  g_autofree char *url = NULL;
  g_autofree char *cache_dir = NULL;
  g_autoptr(SqlenvfsRemote) remote = NULL;
  g_auto(GStrv) kept = NULL;
  guint64 cache_max = G_GUINT64_CONSTANT(4) << 30;
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
    { "remote", 0, 0, G_OPTION_ARG_STRING, &url,
      "Mount the replica at URL (s3://bucket/prefix) read-only instead of a root: "
      "snapshots/, backups/ and pitr/ only, from a local cache (-o cache=DIR, default "
      "$XDG_CACHE_HOME/sqlenvfs/<hash of URL>; -o cache-max-bytes=N, default 4 GiB)",
      "URL" },
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

  if (url != NULL) {
    /* mount --remote URL MOUNTPOINT: our -o keys are taken out. */
    GPtrArray *rest = g_ptr_array_new();
    for (gsize i = 0; options && options[i]; i++) {
      g_auto(GStrv) parts = g_strsplit(options[i], ",", -1);
      for (gsize j = 0; parts[j]; j++) {
        if (g_str_has_prefix(parts[j], "cache=")) {
          if (parts[j][6] == '\0')
            return cli_usage("mount", "-o cache= is empty: give the cache's directory, or leave "
                             "the option out for the default");
          g_free(cache_dir);
          cache_dir = g_strdup(parts[j] + 6);
        } else if (g_str_has_prefix(parts[j], "cache-max-bytes=")) {
          if (!g_ascii_string_to_unsigned(parts[j] + 16, 10, 0, G_MAXINT64, &cache_max, NULL))
            return cli_usage("mount", "-o %s: give a number of bytes", parts[j]);
        } else if (*parts[j]) {
          g_ptr_array_add(rest, g_strdup(parts[j]));
        }
      }
    }
    g_ptr_array_add(rest, NULL);
    kept = (char **)g_ptr_array_free(rest, FALSE);
    if (argc != 2)
      return cli_usage("mount", "--remote URL takes one MOUNTPOINT");
    /* A script's unset variable, not the current directory. */
    if (*argv[1] == '\0')
      return cli_usage("mount", "MOUNTPOINT is empty (nothing was mounted; give the mount point's "
                       "directory)");
    if (cache_dir == NULL) {
      g_autofree char *hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, url, -1);
      hash[16] = '\0';
      cache_dir = g_build_filename(g_get_user_cache_dir(), "sqlenvfs", hash, NULL);
    }
    remote = sqlenvfs_remote_open_cache(url, cli_remote_conf(), cache_dir, &error);
    if (remote == NULL || sqlenvfs_remote_cache_sync(remote, &error) == NULL)
      return cli_fail("mount", g_steal_pointer(&error));
    /* The directory as checked: its symbolic links and ".." resolved. */
    g_free(cache_dir);
    cache_dir = g_strdup(sqlenvfs_remote_root_dir(remote));
    {
      /* The pitr/ files the mount rebuilds are bounded the same way. */
      g_autofree char *conf = g_build_filename(cache_dir, "sqlenvfs.conf", NULL);
      g_autofree char *text = g_strdup_printf("[cache]\nmax-bytes=%" G_GUINT64_FORMAT
                                              "\nmin-free-bytes=0\n", cache_max);
      if (!sqlenvfs_write_file_atomic(conf, text, strlen(text), 0600, &error))
        return cli_fail("mount", g_steal_pointer(&error));
    }
    root = cache_dir;
    mountpoint = argv[1];
    opts.remote = remote;
    opts.remote_cache_max = cache_max;
  } else if (argc == 3) {
    root = argv[1];
    mountpoint = argv[2];
    opts.root_given_as = "the mount's ROOT argument";
    if (*root == '\0')
      return cli_usage("mount", "ROOT is empty (nothing was mounted; give the root's directory)");
    if (cli_root_arg() != NULL) {
      g_autofree char *a = g_canonicalize_filename(cli_root_arg(), NULL);
      g_autofree char *b = g_canonicalize_filename(root, NULL);
      if (strcmp(a, b) != 0)
        return cli_usage("mount", "--root %s and ROOT %s name two roots (nothing was mounted; "
                         "give one of them)", cli_root_arg(), root);
    }
  } else if (argc == 2) {
    root = cli_root_arg();
    mountpoint = argv[1];
  } else {
    return cli_usage("mount", argc < 2 ? "missing MOUNTPOINT" : "too many arguments");
  }
  if (*mountpoint == '\0')
    return cli_usage("mount", "MOUNTPOINT is empty (nothing was mounted; give the mount "
                     "point's directory)");

  opts.root = root;
  opts.mountpoint = mountpoint;
  opts.foreground = foreground;
  opts.debug = debug;
  opts.single_thread = single_thread;
  opts.options = remote != NULL ? kept : options;
  opts.options_refused = &options_refused;
  if (!sqlenvfs_fs_mount(&opts, &error)) {
    int status = cli_fail("mount", g_steal_pointer(&error));
    return options_refused ? CLI_USAGE : status;
  }
  return CLI_OK;
}
