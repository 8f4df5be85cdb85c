#include "event/event.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/random.h"
#include "base/timeutil.h"

static char source[300] = "/cellvisor/localhost";

void
event_init_source(void)
{
	char host[256];
	if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		snprintf(source, sizeof(source), "/cellvisor/%s", host);
	}
}

const char *
event_source(void)
{
	return source;
}

json_t *
event_new(const char *type, const char *subject_id, json_t *data)
{
	char id[UUID_STR_LEN], now[TIME_RFC3339_MAX], subject[128];

	if (!data || uuid_v4(id) < 0) {
		json_decref(data);
		return NULL;
	}
	time_rfc3339_now(now, sizeof(now));
	snprintf(subject, sizeof(subject), "cell:%s", subject_id);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "specversion", "1.0", "id", id,
	    "source", source, "type", type, "subject", subject, "time", now, "datacontenttype",
	    "application/json", "data", data);
}
