/*
 * main.c — the `sqlenvfs` command: dispatch to subcommands.
 */
#include "config.h"

#include <locale.h>
#include <malloc.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

typedef struct {
  const char *name;
  const char *synopsis;
  int (*run)(int argc, char **argv);
} Command;

static const Command commands[] = {
#define SQLENVFS_COMMAND(name, synopsis) { #name, synopsis, cmd_##name },
#define SQLENVFS_COMMAND_ALIAS(name, fn, synopsis) { name, synopsis, fn },
#include "commands.def"
#undef SQLENVFS_COMMAND
#undef SQLENVFS_COMMAND_ALIAS
  { NULL, NULL, NULL }
};

static void
usage(FILE *out)
{
  fprintf(out,
          "Usage: sqlenvfs COMMAND [OPTIONS]\n"
          "\n"
          "Production and development SQLite databases with backups, snapshots,\n"
          "continuous WAL archiving and point-in-time recovery, shown as a filesystem.\n"
          "\n"
          "Commands:\n");
  for (gsize i = 0; commands[i].name; i++)
    fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].synopsis);
  fprintf(out,
          "\n"
          "Every command takes --root DIR (default: $SQLENVFS_ROOT, else the current\n"
          "directory; before the command or after it) and --help (`sqlenvfs help CMD`\n"
          "too). `sqlenvfs --version` prints the version. See sqlenvfs(1).\n");
}

/* A command that runs for a moment keeps the memory it frees for its next
 * blocks: a block of 128 KiB or more (a record, its pages, an index read)
 * is otherwise mapped for each use and unmapped after it, and every use
 * then touches new pages, at 10-15 us a page on some virtual machines
 * (util.h, sqlenvfs_alloc_large). The mount and the archiver run for long
 * and give back what they free. */
static void
keep_freed_memory(void)
{
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
}

/* `sqlenvfs --root DIR COMMAND ...` (also -r DIR, --root=DIR, -rDIR) as
 * `sqlenvfs COMMAND --root DIR ...`: the root is an option every command
 * takes, and so read by its own parsing (given twice, it is refused there).
 * FALSE, said, when the option has no value or no command follows. */
/* The array root_first() made: freed at exit (an option parser takes
 * entries out of it; its strings are the process's own arguments). */
static char **moved_argv;

static void
free_moved_argv(void)
{
  g_free(moved_argv);
}

static gboolean
is_root_option(const char *a)
{
  return strcmp(a, "--root") == 0 || g_str_has_prefix(a, "--root=") || g_str_has_prefix(a, "-r");
}

static gboolean
root_first(int *argc, char ***argv)
{
  const char *a = (*argv)[1];
  gboolean joined = g_str_has_prefix(a, "--root=") || (g_str_has_prefix(a, "-r") && a[2] != '\0');
  int taken = joined ? 1 : 2;
  char *value;
  char **moved;

  if (!joined && (*argc < 3)) {
    fprintf(stderr, "sqlenvfs: %s needs a value: the root's directory (see 'sqlenvfs --help')\n",
            a);
    return FALSE;
  }
  value = joined ? (char *)(a[1] == '-' ? a + 7 : a + 2) : (*argv)[2];
  if (*argc < 1 + taken + 1) {
    fprintf(stderr, "sqlenvfs: no command after %s (see 'sqlenvfs --help')\n", a);
    return FALSE;
  }
  if (is_root_option((*argv)[1 + taken])) {
    fprintf(stderr, "sqlenvfs: --root given twice: give it once (see 'sqlenvfs --help')\n");
    return FALSE;
  }
  /* argv[0], COMMAND, --root, DIR, the rest. */
  moved = g_new0(char *, (gsize)*argc + 2);
  moved[0] = (*argv)[0];
  moved[1] = (*argv)[1 + taken];
  moved[2] = (char *)"--root";
  moved[3] = value;
  for (int i = 2 + taken; i < *argc; i++)
    moved[i - taken + 2] = (*argv)[i];
  *argc = *argc - taken + 2;
  moved_argv = moved;
  atexit(free_moved_argv);
  *argv = moved;
  return TRUE;
}

int
main(int argc, char **argv)
{
  setlocale(LC_CTYPE, "");
  if (argc >= 2 && is_root_option(argv[1]) && !root_first(&argc, &argv))
    return CLI_USAGE;
  if (argc < 2) {
    usage(stderr);
    return CLI_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    /* `help CMD` is `CMD --help`. */
    char *help_argv[] = { argc > 2 ? argv[2] : NULL, (char *)"--help", NULL };
    if (argc > 3) {
      fprintf(stderr, "sqlenvfs: %s takes one command at most (see 'sqlenvfs --help')\n",
              argv[1]);
      return CLI_USAGE;
    }
    for (gsize i = 0; argc == 3 && commands[i].name; i++)
      if (strcmp(argv[2], commands[i].name) == 0)
        return commands[i].run(2, help_argv);
    if (argc == 3) {
      fprintf(stderr, "sqlenvfs: unknown command '%s' (see 'sqlenvfs --help')\n", argv[2]);
      return CLI_USAGE;
    }
    usage(stdout);
    return CLI_OK;
  }
  if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
    if (argc > 2) {
      fprintf(stderr, "sqlenvfs: %s takes no argument, not '%s' (see 'sqlenvfs --help')\n",
              argv[1], argv[2]);
      return CLI_USAGE;
    }
    printf("sqlenvfs %s (SQLite %s)\n", SQLENVFS_VERSION, sqlite3_libversion());
    return CLI_OK;
  }
  for (gsize i = 0; commands[i].name; i++)
    if (strcmp(argv[1], commands[i].name) == 0) {
      /* The mount routes the log itself (to its log file once daemonized). */
      if (strcmp(argv[1], "mount") != 0)
        cli_install_log_writer();
      if (strcmp(argv[1], "mount") != 0 && strcmp(argv[1], "archive") != 0)
        keep_freed_memory();
      return commands[i].run(argc - 1, argv + 1);
    }
  /* mount(8) and /etc/fstab, through mount.fuse3, run `sqlenvfs ROOT MNT -o
   * OPTS` with no subcommand: a first argument that is a directory means mount. */
  if (argc >= 3 && argv[1][0] != '-' && g_file_test(argv[1], G_FILE_TEST_IS_DIR)) {
    argv[0] = (char *)"mount";
    return cmd_mount(argc, argv);
  }
  fprintf(stderr, "sqlenvfs: unknown command '%s' (see 'sqlenvfs --help')\n", argv[1]);
  return CLI_USAGE;
}
