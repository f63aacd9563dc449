%% distbench.erl - distribution benchmark, Erlang side: the server node
%% that both clients talk to, and the Erlang client (the twin of
%% bench/dist.c).  scripts/bench's `dist` workload runs everything.
%%
%% Server (one node, the same for both clients):
%%   erl -sname S -setcookie C -noshell -noinput -pa EBIN \
%%       -kernel inet_dist_use_interface '{127,0,0,1}' \
%%       -s distbench server ReadyFile
%% registers `distbench` and writes its OS pid to ReadyFile.  It answers
%%   {From, ping}    -> From ! pong
%%   {From, sink, N} -> From ! {sink, Pid}: a fresh sink for N messages
%%   {From, echo}    -> From ! {echo, Pid}: a fresh echo process
%% A sink receives {msg, I} for I = 1..N, checks they come in order, sends
%% {ack, I} to From every ?BATCH messages and {done, Bad} after the last.
%% An echo answers {From, I} with From ! {pong, I} until stop.
%%
%% Client (another node):
%%   erl -sname K -setcookie C -noshell -pa EBIN +S S \
%%       -kernel inet_dist_use_interface '{127,0,0,1}' \
%%       -run distbench client ServerNode [Runs [N [M]]]
%% (defaults 5, 200000, 20000), one untimed warm-up, then Runs timed runs,
%% upper median:
%%   stream     N messages {msg, I} to a fresh sink, at most ?WINDOW acks
%%              outstanding; msgs_per_s = N / (first send .. last ack).
%%   roundtrip  M round trips {Self, I} -> {pong, I} with a fresh echo
%%              process; ns_per_round_trip = elapsed / M.
%% check=ok iff every sink saw its messages in order and every pong
%% carried the number sent.
-module(distbench).
-import(benchlib, [arg_int/3, now_ns/0]).
-export([server/1, client/1]).

-define(BATCH, 1000).
-define(WINDOW, 8).

%% ------------------------------------------------------------- server

server([Ready]) ->
    register(distbench, spawn(fun serve/0)),
    ok = file:write_file(atom_to_list(Ready), os:getpid()).

serve() ->
    receive
        {From, ping} -> From ! pong;
        {From, sink, N} -> From ! {sink, spawn(fun() -> sink(From, N, 1, 0) end)};
        {From, echo} -> From ! {echo, spawn(fun echo/0)};
        _ -> ok
    end,
    serve().

sink(From, N, I, Bad) when I > N -> From ! {done, Bad};
sink(From, N, I, Bad) ->
    receive
        {msg, J} ->
            case I rem ?BATCH of
                0 -> From ! {ack, I};
                _ -> ok
            end,
            sink(From, N, I + 1, case J of I -> Bad; _ -> Bad + 1 end)
    end.

echo() ->
    receive
        {From, I} when is_pid(From) -> From ! {pong, I}, echo();
        stop -> ok
    end.

%% ------------------------------------------------------------- client

client(Args) -> benchlib:main("distbench", fun run/1, Args).

run([Peer | Rest]) ->
    Runs = arg_int(Rest, 1, 5),
    N = arg_int(Rest, 2, 200000),
    M = arg_int(Rest, 3, 20000),
    (N rem ?BATCH =:= 0 andalso N >= ?WINDOW * ?BATCH) orelse error({bad_n, N}),
    Srv = {distbench, list_to_atom(Peer)},
    Srv ! {self(), ping},
    receive pong -> ok after 10000 -> error(no_server) end,
    S = erlang:system_info(schedulers_online),
    F1 = report(S, Runs, "stream", "msgs", N, "msgs_per_s", "msg/s",
                fun() -> stream_once(Srv, N) end),
    F2 = report(S, Runs, "roundtrip", "round_trips", M, "ns_per_round_trip", "ns",
                fun() -> roundtrip_once(Srv, M) end),
    F1 + F2 =:= 0 orelse erlang:halt(1).

report(S, Runs, Mode, CountName, Count, Metric, Unit, Once) ->
    _ = Once(),
    Res = [begin erlang:garbage_collect(), Once() end || _ <- lists:seq(1, Runs)],
    Vals = lists:sort([V || {V, _} <- Res]),
    Bad = lists:sum([B || {_, B} <- Res]),
    Med = lists:nth(Runs div 2 + 1, Vals),
    Check = case Bad of 0 -> "ok"; _ -> "WRONG" end,
    io:format("RESULT bench=dist impl=erlang schedulers=~b peer=erlang mode=~s ~s=~b runs=~b "
              "check=~s min_~s=~.1f max_~s=~.1f ~s=~.1f unit=~s~n",
              [S, Mode, CountName, Count, Runs, Check, Metric, float(hd(Vals)),
               Metric, float(lists:last(Vals)), Metric, float(Med), Unit]),
    case Bad of 0 -> 0; _ -> 1 end.

stream_once(Srv, N) ->
    Srv ! {self(), sink, N},
    Sink = receive {sink, P} -> P end,
    Batches = N div ?BATCH,
    T0 = now_ns(),
    Acked = send_batches(Sink, 1, Batches, 0),
    wait_acks(Acked, Batches),
    T1 = now_ns(),
    Bad = receive {done, B} -> B end,
    {N * 1.0e9 / (T1 - T0), Bad}.

send_batches(_S, K, Batches, Acked) when K > Batches -> Acked;
send_batches(S, K, Batches, Acked) ->
    send_n(S, (K - 1) * ?BATCH + 1, K * ?BATCH),
    Acked1 = case K >= ?WINDOW of
                 true -> wait_ack(Acked + 1);
                 false -> Acked
             end,
    send_batches(S, K + 1, Batches, Acked1).

send_n(_S, I, Last) when I > Last -> ok;
send_n(S, I, Last) -> S ! {msg, I}, send_n(S, I + 1, Last).

wait_ack(K) ->
    Want = K * ?BATCH,
    receive {ack, Want} -> K end.

wait_acks(Acked, Batches) when Acked >= Batches -> ok;
wait_acks(Acked, Batches) -> wait_acks(wait_ack(Acked + 1), Batches).

roundtrip_once(Srv, M) ->
    Srv ! {self(), echo},
    Echo = receive {echo, P} -> P end,
    T0 = now_ns(),
    Bad = rt_loop(Echo, 1, M, 0),
    T1 = now_ns(),
    Echo ! stop,
    {(T1 - T0) / M, Bad}.

rt_loop(_E, I, M, Bad) when I > M -> Bad;
rt_loop(E, I, M, Bad) ->
    E ! {self(), I},
    receive {pong, J} -> rt_loop(E, I + 1, M, case J of I -> Bad; _ -> Bad + 1 end) end.
