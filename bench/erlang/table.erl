%% table.erl - the Erlang peer of bench/table.c: ETS lookups, inserts and
%% counter updates per second, one worker per scheduler.
%% Build: erlc -o EBIN bench/erlang/table.erl
%% Run:   erl -noshell +S S -pa EBIN -run table main [Runs [N [Keys]]]
%%        (defaults 5, 4000000, 100000; scripts/bench's `table` workload
%%        runs it)
%%
%% The same workloads and RESULT lines as table.c (impl=erlang): a public
%% `set` table of Keys keys, I -> {I, I, <<16 bytes>>, I * 2} (ETS keeps
%% the key inside the object: element 1 is the key, the rest is table.c's
%% value {I, <<16 bytes>>, I * 2}); worker I (bound to scheduler I with the
%% undocumented but long-standing spawn_opt option {scheduler, I}, as
%% sendterm.erl does) draws keys from the same LCG as the C workers and does
%% N / Workers operations:
%%   table_lookup   ets:lookup/2, the value checked (its first element is
%%                  the key); table with {read_concurrency, true}.
%%   table_insert   ets:insert/2 of a random existing key, a fresh value;
%%                  table with {write_concurrency, true}.
%%   table_counter  ets:update_counter(T, K, {4, 1}) on one of 1,024
%%                  counters (objects {K, 0, 0, Count}); table with
%%                  {write_concurrency, true}.
%% Metric: operations per second of all workers, from the start message to
%% the last report; one untimed warm-up run, then Runs timed runs, median
%% (upper) reported.
-module(table).
-import(benchlib, [arg_int/3, now_ns/0]).
-export([main/1]).

-define(COUNTERS, 1024).
-define(PAD, <<"0123456789abcdef">>).

main(Args) -> benchlib:main("table", fun run/1, Args).

run(Args) ->
    Runs = arg_int(Args, 1, 5),
    N = arg_int(Args, 2, 4000000),
    Keys = arg_int(Args, 3, 100000),
    S = erlang:system_info(schedulers_online),
    Failed = lists:sum([one(K, S, Runs, Ops, Keys)
                        || {K, Ops} <- [{lookup, N}, {insert, N div 2}, {counter, N div 2}]]),
    Failed =:= 0 orelse erlang:halt(1).

value(I) -> {I, I, ?PAD, I * 2}.

lcg(X) -> (X * 1103515245 + 12345) band 16#7fffffff.

one(Kind, S, Runs, N, Keys) ->
    Opts = case Kind of
               lookup -> [set, public, {read_concurrency, true}];
               _ -> [set, public, {write_concurrency, true}]
           end,
    T = ets:new(bench, Opts),
    NKeys = case Kind of counter -> ?COUNTERS; _ -> Keys end,
    case Kind of
        counter -> ets:insert(T, [{K, 0, 0, 0} || K <- lists:seq(0, NKeys - 1)]);
        _ -> ets:insert(T, [value(K) || K <- lists:seq(0, NKeys - 1)])
    end,
    PerWorker = N div S,
    Once = fun() ->
                   Driver = self(),
                   Ws = [spawn_opt(fun() -> worker(Driver, Kind, T, NKeys, PerWorker, I) end,
                                   [{scheduler, I}, link])
                         || I <- lists:seq(1, S)],
                   timer:sleep(10),
                   T0 = now_ns(),
                   [W ! go || W <- Ws],
                   Bad = lists:sum([receive {done, B} -> B end || _ <- Ws]),
                   El = now_ns() - T0,
                   {PerWorker * S * 1.0e9 / El, Bad}
           end,
    _ = Once(),
    Res = [begin erlang:garbage_collect(), Once() end || _ <- lists:seq(1, Runs)],
    Vals = lists:sort([V || {V, _} <- Res]),
    Bad = lists:sum([B || {_, B} <- Res]),
    Size = ets:info(T, size),
    Sum = case Kind of
              counter -> lists:sum([C || {_, _, _, C} <- ets:tab2list(T)]);
              _ -> none
          end,
    Ok = Bad =:= 0 andalso Size =:= NKeys andalso
        (Sum =:= none orelse Sum =:= PerWorker * S * (Runs + 1)),
    ets:delete(T),
    Med = lists:nth(Runs div 2 + 1, Vals),
    io:format("RESULT bench=table_~s impl=erlang schedulers=~b keys=~b workers=~b ops=~b runs=~b "
              "check=~s min_ops_per_s=~b max_ops_per_s=~b ops_per_s=~b unit=ops/s~n",
              [Kind, S, NKeys, S, PerWorker * S, Runs, case Ok of true -> "ok"; false -> "WRONG" end,
               round(hd(Vals)), round(lists:last(Vals)), round(Med)]),
    case Ok of true -> 0; false -> 1 end.

worker(Driver, Kind, T, Keys, N, I) ->
    receive go -> ok end,
    Bad = loop(Kind, T, Keys, N, I, 0),
    Driver ! {done, Bad}.

loop(_Kind, _T, _Keys, 0, _X, Bad) -> Bad;
loop(lookup, T, Keys, N, X0, Bad) ->
    X = lcg(X0),
    K = X rem Keys,
    B = case ets:lookup(T, K) of
            [{K, K, _, _}] -> Bad;
            _ -> Bad + 1
        end,
    loop(lookup, T, Keys, N - 1, X, B);
loop(insert, T, Keys, N, X0, Bad) ->
    X = lcg(X0),
    K = X rem Keys,
    ets:insert(T, value(K)),
    loop(insert, T, Keys, N - 1, X, Bad);
loop(counter, T, Keys, N, X0, Bad) ->
    X = lcg(X0),
    ets:update_counter(T, X rem Keys, {4, 1}),
    loop(counter, T, Keys, N - 1, X, Bad).
