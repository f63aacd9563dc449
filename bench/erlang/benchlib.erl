%% benchlib.erl - what every Erlang twin of a uproc benchmark shares: the
%% entry wrapper (exit status 0, or 1 with the error on stderr), integer
%% arguments with defaults, and the clock.  Compiled with each twin by
%% scripts/bench.
-module(benchlib).
-export([main/3, arg_int/3, now_ns/0]).

%% Run Run(Args) and halt: 0 when it returns, 1 (the error printed) when it
%% raises.
main(Name, Run, Args) ->
    try
        Run(Args),
        erlang:halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "~s failed: ~p:~p~n~p~n", [Name, Class, Reason, Stack]),
            erlang:halt(1)
    end.

%% The I-th argument as an integer, or Default when there are fewer.
arg_int(Args, I, _Default) when length(Args) >= I -> list_to_integer(lists:nth(I, Args));
arg_int(_, _, Default) -> Default.

now_ns() -> erlang:monotonic_time(nanosecond).
