%% sendterm.erl - the Erlang peer of bench/send_term.c: term messages.
%% Build: erlc -o EBIN bench/erlang/sendterm.erl
%% Run:   erl -noshell +S S -pa EBIN -run sendterm main [Runs [N [M]]]
%%        (defaults 5, 1000000, 10000; scripts/bench's `term` workload runs it)
%%
%% The same workloads and RESULT lines as send_term.c (impl=erlang); see
%% there for the definitions.  A is bound to scheduler 1 and B to scheduler
%% 1 (..._same) or 2 (..._cross, with +S 2 or more), with the undocumented
%% but long-standing spawn_opt option {scheduler, N}: the C program pins its
%% processes the same way.  A and B are fresh processes in every run; one
%% untimed warm-up run, then Runs timed runs, median (upper) reported.
%%
%% Differences that are Erlang's own: a 100-byte binary is a reference-
%% counted off-heap binary, so sending the 10-tuple copies 11 words and
%% shares the bytes (the C copy takes them along); a process's terms are
%% garbage-collected rather than reset.
%%
%% The call/reply workloads: call/2 makes its reference with make_ref() just
%% before the send and receives {Ref, _}, which the compiler turns into a
%% receive marker (OTP 24+): the receive looks only at messages that arrived
%% after the marker, O(1) however many unrelated messages are queued
%% (term_call_mark vs term_call_empty shows it).  call_noopt/3 is given a
%% reference made elsewhere and is called through ?MODULE: (the compiler
%% follows references through local calls), so no marker: it scans the
%% queue from the start (term_call_scan).
-module(sendterm).
-import(benchlib, [arg_int/3, now_ns/0]).
-export([main/1]).
%% Exported (and called as ?MODULE:) only so that the compiler cannot see
%% where its reference comes from and give it a receive marker.
-export([call_noopt/3]).

-define(BATCH, 1000).
-define(WINDOW, 4).
-define(JUNK, 10000).

main(Args) -> benchlib:main("sendterm", fun run/1, Args).

run(Args) ->
    Runs = arg_int(Args, 1, 5),
    N = arg_int(Args, 2, 1000000),
    M = arg_int(Args, 3, 10000),
    (N rem ?BATCH =:= 0 andalso N >= 5 * ?BATCH) orelse error({bad_n, N}),
    S = erlang:system_info(schedulers_online),
    Pat = list_to_binary([(I * 3 + 1) band 255 || I <- lists:seq(0, 99)]),
    Places = case S > 1 of true -> [same, cross]; false -> [same] end,
    Failed = lists:sum([workloads(P, S, Runs, N, M, Pat) || P <- Places]),
    Failed =:= 0 orelse erlang:halt(1).

%% Returns the number of workloads whose checks failed.
workloads(Place, S, Runs, N, M, Pat) ->
    Tuple = {Pat, 1, 2, 3, 4, 5, 6, 7, 8, 9},
    W = [
     {"term_stream", "messages", N, none, "ns_per_msg",
      fun(D, B) -> stream_a(D, B, N, Tuple) end,
      fun(A) -> stream_b(A, N, Tuple) end},
     {"term_pingpong", "round_trips", N div 5, none, "ns_per_round_trip",
      fun(D, B) -> pingpong_a(D, B, N div 5, Tuple) end,
      fun(A) -> echo_b(A, Tuple, 0) end},
     {"term_refpingpong", "round_trips", N, none, "ns_per_round_trip",
      fun(D, B) -> refpingpong_a(D, B, N) end,
      fun(A) -> echo_b(A, none, 0) end},
     {"term_call_mark", "calls", M, ?JUNK, "ns_per_call",
      fun(D, B) -> client(D, B, M, ?JUNK, mark) end,
      fun(_) -> server() end},
     {"term_call_empty", "calls", M, 0, "ns_per_call",
      fun(D, B) -> client(D, B, M, 0, mark) end,
      fun(_) -> server() end},
     {"term_call_scan", "calls", max(1, M div 10), ?JUNK, "ns_per_call",
      fun(D, B) -> client(D, B, max(1, M div 10), ?JUNK, scan) end,
      fun(_) -> server() end}],
    lists:sum([one(Place, S, Runs, X) || X <- W]).

one(Place, S, Runs, {Name, CountName, Count, Queued, Metric, FunA, FunB}) ->
    SchedB = case Place of same -> 1; cross -> 2 end,
    Once = fun() ->
                   Driver = self(),
                   A = spawn_opt(fun() -> receive {b, B} -> FunA(Driver, B) end end,
                                 [{scheduler, 1}, link]),
                   B = spawn_opt(fun() -> FunB(A) end, [{scheduler, SchedB}, link]),
                   A ! {b, B},
                   receive {result, Ns, Bad} -> {Ns / Count, Bad} end
           end,
    _ = Once(),
    Res = [begin erlang:garbage_collect(), Once() end || _ <- lists:seq(1, Runs)],
    Vals = lists:sort([V || {V, _} <- Res]),
    Bad = lists:sum([B || {_, B} <- Res]),
    Med = lists:nth(Runs div 2 + 1, Vals),
    Q = case Queued of none -> ""; _ -> io_lib:format(" queued=~b", [Queued]) end,
    Check = case Bad of 0 -> "ok"; _ -> "WRONG" end,
    io:format("RESULT bench=~s_~s impl=erlang schedulers=~b ~s=~b~s runs=~b check=~s "
              "min_ns=~.1f max_ns=~.1f ~s=~.1f unit=ns~n",
              [Name, Place, S, CountName, Count, Q, Runs, Check,
               float(hd(Vals)), float(lists:last(Vals)), Metric, float(Med)]),
    case Bad of 0 -> 0; _ -> 1 end.

check(T, T) -> 0;
check(_, _) -> 1.

%% ------------------------------------------------------------- stream

stream_a(Driver, B, N, T) ->
    Batches = N div ?BATCH,
    T0 = now_ns(),
    Acked = send_batches(B, T, 1, Batches, 0),
    wait_acks(Acked, Batches),
    T1 = now_ns(),
    receive {done, Bad} -> Driver ! {result, T1 - T0, Bad} end.

send_batches(_B, _T, K, Batches, Acked) when K > Batches -> Acked;
send_batches(B, T, K, Batches, Acked) ->
    send_n(B, T, ?BATCH),
    Acked1 = case K >= ?WINDOW of
                 true -> wait_ack(Acked + 1);
                 false -> Acked
             end,
    send_batches(B, T, K + 1, Batches, Acked1).

send_n(_B, _T, 0) -> ok;
send_n(B, T, K) -> B ! T, send_n(B, T, K - 1).

wait_ack(K) ->
    Want = K * ?BATCH,
    receive {ack, Want} -> K end.

wait_acks(Acked, Batches) when Acked >= Batches -> ok;
wait_acks(Acked, Batches) -> wait_acks(wait_ack(Acked + 1), Batches).

stream_b(A, N, T) -> stream_b(A, N, T, 1, 0).

stream_b(A, N, _T, I, Bad) when I > N -> A ! {done, Bad};
stream_b(A, N, T, I, Bad) ->
    receive
        Msg ->
            Bad1 = Bad + check(Msg, T),
            case I rem ?BATCH of
                0 -> A ! {ack, I};
                _ -> ok
            end,
            stream_b(A, N, T, I + 1, Bad1)
    end.

%% ---------------------------------------------------------- pingpongs

%% B: echo every message back to A until stop; check it if T is a term.
echo_b(A, T, Bad) ->
    receive
        stop -> A ! {done, Bad};
        Msg ->
            A ! Msg,
            echo_b(A, T, case T of none -> Bad; _ -> Bad + check(Msg, T) end)
    end.

pingpong_a(Driver, B, N, T) ->
    T0 = now_ns(),
    Bad = pingpong_loop(B, T, N, 0),
    T1 = now_ns(),
    B ! stop,
    receive {done, BadB} -> Driver ! {result, T1 - T0, Bad + BadB} end.

pingpong_loop(_B, _T, 0, Bad) -> Bad;
pingpong_loop(B, T, K, Bad) ->
    B ! T,
    receive Msg -> pingpong_loop(B, T, K - 1, Bad + check(Msg, T)) end.

refpingpong_a(Driver, B, N) ->
    Ref = make_ref(),
    T0 = now_ns(),
    Bad = refpingpong_loop(B, Ref, 0, N, 0),
    T1 = now_ns(),
    B ! stop,
    receive {done, BadB} -> Driver ! {result, T1 - T0, Bad + BadB} end.

refpingpong_loop(_B, _Ref, N, N, Bad) -> Bad;
refpingpong_loop(B, Ref, I, N, Bad) ->
    B ! {Ref, I},
    receive Msg -> refpingpong_loop(B, Ref, I + 1, N, Bad + check(Msg, {Ref, I})) end.

%% --------------------------------------------------------- call/reply

server() ->
    receive
        {From, Ref, I} -> From ! {Ref, I}, server();
        stop -> ok
    end.

call(Server, I) ->
    Ref = make_ref(),
    Server ! {self(), Ref, I},
    receive {Ref, R} -> R end.

call_noopt(Server, Ref, I) ->
    Server ! {self(), Ref, I},
    receive {Ref, R} -> R end.

client(Driver, Server, Calls, Queued, Mode) ->
    Other = make_ref(),
    junk(Other, 0, Queued),
    T0 = now_ns(),
    Bad = calls(Mode, Server, 0, Calls, 0),
    T1 = now_ns(),
    Server ! stop,
    {message_queue_len, Len} = process_info(self(), message_queue_len),
    Bad1 = Bad + check(Len, Queued) + check_junk(Other, 0, Queued, 0),
    Driver ! {result, T1 - T0, Bad1}.

junk(_Other, Q, Q) -> ok;
junk(Other, J, Q) ->
    self() ! case J rem 2 of 1 -> J; 0 -> {Other, J} end,
    junk(Other, J + 1, Q).

check_junk(_Other, Q, Q, Bad) -> Bad;
check_junk(Other, J, Q, Bad) ->
    Want = case J rem 2 of 1 -> J; 0 -> {Other, J} end,
    receive Msg -> check_junk(Other, J + 1, Q, Bad + check(Msg, Want))
    after 0 -> Bad + 1
    end.

calls(_Mode, _S, N, N, Bad) -> Bad;
calls(mark, S, I, N, Bad) ->
    calls(mark, S, I + 1, N, Bad + check(call(S, I), I));
calls(scan, S, I, N, Bad) ->
    calls(scan, S, I + 1, N, Bad + check(?MODULE:call_noopt(S, make_ref(), I), I)).
