# git_commit.cmake: run at every build (cmake -DSRC=... -DOUT=... -P), writes
# OUT as `#define VKI_GIT_COMMIT "<short hash>[-dirty]"` and touches it only
# when that changes, so a figure printed by a binary names the commit it was
# built from, not the one the build folder was configured at.
execute_process(COMMAND git -C ${SRC} rev-parse --short HEAD
  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT commit)
  set(commit unknown)
else()
  # tracked files changed since that commit
  execute_process(COMMAND git -C ${SRC} diff --quiet HEAD -- RESULT_VARIABLE dirty ERROR_QUIET)
  if(dirty EQUAL 1)
    set(commit "${commit}-dirty")
  endif()
endif()
set(text "#define VKI_GIT_COMMIT \"${commit}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
