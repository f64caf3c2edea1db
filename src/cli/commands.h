/* Declarations of every cmd_<name>() listed in commands.def. */
#pragma once

#define SQLENVFS_COMMAND(name, synopsis) int cmd_##name(int argc, char **argv);
#define SQLENVFS_COMMAND_ALIAS(name, fn, synopsis) int fn(int argc, char **argv);
#include "commands.def"
#undef SQLENVFS_COMMAND
#undef SQLENVFS_COMMAND_ALIAS
