/* hello.c - the README's example: a process per greeting, replies by message. */
#include <stdio.h>
#include <uproc.h>

static void greeter(void *arg)
{
	up_pid parent = (up_pid)(intptr_t)arg;
	struct up_msg m;
	while (up_recv(&m, UP_INFINITY) == 0 && m.word != 0) /* 0: stop */
		up_send_word(parent, m.word * 2);
}

static void main_process(void *arg)
{
	up_pid g = up_spawn(greeter, (void *)(intptr_t)up_self());
	for (uint64_t i = 1; i <= 3; i++) {
		struct up_msg reply;
		up_send_word(g, i);
		if (up_recv(&reply, 1000000000) == 0) /* 1 s timeout */
			printf("%llu -> %llu\n", (unsigned long long)i, (unsigned long long)reply.word);
	}
	up_send_word(g, 0);
}

int main(void) { return up_run(main_process, NULL, NULL) == 0 ? 0 : 1; }
