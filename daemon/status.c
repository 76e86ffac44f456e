/* status: the process-wide facts of status.h. */
#include "status.h"

struct status daemon_status = {.reload = {.last_ok_s = -1, .last_failure_s = -1}};
