%% signals.erl - the Erlang peer of bench/signals.c: exit propagation
%% through links, supervisor restart latency, gen_server:call round trips.
%% Build: erlc -o EBIN bench/erlang/signals.erl
%% Run:   erl -noshell +S S -pa EBIN -run signals main [Runs [N]]
%%        (defaults 5 and 100000; scripts/bench's `signals` workload runs it)
%%
%% The same workloads and RESULT lines as signals.c (impl=erlang):
%%
%% exit_chain   N processes, each spawn_link-ed by the previous one; the
%%              driver monitors the last, then exit(First, chain_break);
%%              metric: ms until the last one's DOWN (a fresh chain per run).
%% sup_restart  A supervisor (OTP's supervisor module, one_for_one, one
%%              permanent worker started by start_worker/1); one sample is
%%              exit(Worker, crash) until the new worker's {started, Pid}
%%              reaches the driver; 2,000 samples per run, the run's median;
%%              metric: the median of the runs' medians, us.  The logger's
%%              primary level is set to none: the C supervisor writes no
%%              crash reports either.  OTP keeps the restart times of the
%%              last `period` (1 s, its minimum) in a list, as the C
%%              supervisor keeps them in a ring.
%% call         gen_server:call/3 to an echo gen_server, 200,000 calls in a
%%              row from a fresh client per run; the client is bound to
%%              scheduler 1, the server to scheduler 1 (placement=same) or 2
%%              (other, with +S 2 or more), with the undocumented but
%%              long-standing spawn_opt option {scheduler, N} as in
%%              sendterm.erl; metric: ns per call.
%%
%% One untimed warm-up run, then Runs timed runs, median (upper) reported,
%% as the peers do.
-module(signals).
-import(benchlib, [arg_int/3, now_ns/0]).
-export([main/1]).
%% Callbacks of supervisor (init/1 with {sup, _}) and gen_server (init/1
%% with server, handle_call/3, handle_cast/2), and the worker's start.
-export([init/1, handle_call/3, handle_cast/2, start_worker/1]).

-ifndef(RESTARTS).
-define(RESTARTS, 2000).
-endif.
-ifndef(CALLS).
-define(CALLS, 200000).
-endif.

main(Args) -> benchlib:main("signals", fun run/1, Args).

run(Args) ->
    Runs = arg_int(Args, 1, 5),
    N = arg_int(Args, 2, 100000),
    S = erlang:system_info(schedulers_online),
    ok = logger:set_primary_config(level, none),
    F1 = exit_chain(S, Runs, N),
    F2 = sup_restart(S, Runs),
    F3 = call(S, Runs, same),
    F4 = case S > 1 of true -> call(S, Runs, other); false -> 0 end,
    F1 + F2 + F3 + F4 =:= 0 orelse erlang:halt(1).

%% Warm-up, then Runs results of Fun(): {Value, Ok}.  Sorted values and
%% whether every run was ok.
measure(Runs, Fun) ->
    Fun(),
    Rs = [Fun() || _ <- lists:seq(1, Runs)],
    {lists:sort([V || {V, _} <- Rs]), lists:all(fun({_, Ok}) -> Ok end, Rs)}.

median(Sorted) -> lists:nth(length(Sorted) div 2 + 1, Sorted).

check(true) -> {"ok", 0};
check(false) -> {"WRONG", 1}.

%% ------------------------------------------------------------- exit chain

chain(1, Driver) ->
    Driver ! {last, self()},
    receive _ -> error(unexpected) end;
chain(N, Driver) ->
    spawn_link(fun() -> chain(N - 1, Driver) end),
    receive _ -> error(unexpected) end.

chain_once(N) ->
    Self = self(),
    First = spawn(fun() -> chain(N, Self) end),
    Last = receive {last, L} -> L end,
    Ref = monitor(process, Last),
    T0 = now_ns(),
    exit(First, chain_break),
    receive
        {'DOWN', Ref, process, Last, Reason} ->
            {(now_ns() - T0) / 1.0e6, Reason =:= chain_break}
    end.

exit_chain(S, Runs, N) ->
    {Ms, Ok} = measure(Runs, fun() -> chain_once(N) end),
    {C, F} = check(Ok),
    io:format("RESULT bench=exit_chain impl=erlang schedulers=~b processes=~b runs=~b check=~s "
              "min_ms=~.2f max_ms=~.2f ms=~.2f unit=ms~n",
              [S, N, Runs, C, hd(Ms), lists:last(Ms), median(Ms)]),
    F.

%% ------------------------------------------------------------ sup restart

start_worker(Driver) ->
    Pid = spawn_link(fun() ->
                             Driver ! {started, self()},
                             receive _ -> ok end
                     end),
    {ok, Pid}.

init({sup, Driver}) ->
    {ok, {#{strategy => one_for_one, intensity => 100000000, period => 1},
          [#{id => worker, start => {?MODULE, start_worker, [Driver]},
             restart => permanent, shutdown => 1000, type => worker}]}};
init(server) ->
    {ok, nostate}.

restart_loop(0, W, Acc, Ok) -> {W, Acc, Ok};
restart_loop(K, W, Acc, Ok) ->
    T0 = now_ns(),
    exit(W, crash),
    receive
        {started, New} ->
            restart_loop(K - 1, New, [(now_ns() - T0) / 1.0e3 | Acc], Ok andalso New =/= W)
    end.

sup_restart(S, Runs) ->
    process_flag(trap_exit, true),
    {ok, Sup} = supervisor:start_link(?MODULE, {sup, self()}),
    W0 = receive {started, P} -> P end,
    put(worker, W0),
    Once = fun() ->
                   {W, Samples, Ok} = restart_loop(?RESTARTS, get(worker), [], true),
                   put(worker, W),
                   {median(lists:sort(Samples)), Ok}
           end,
    {Us, Ok} = measure(Runs, Once),
    ok = gen_server:stop(Sup),
    receive {'EXIT', Sup, _} -> ok after 1000 -> ok end,
    process_flag(trap_exit, false),
    {C, F} = check(Ok),
    io:format("RESULT bench=sup_restart impl=erlang schedulers=~b strategy=one_for_one "
              "restarts_per_run=~b runs=~b check=~s min_us=~.2f max_us=~.2f us=~.2f unit=us~n",
              [S, ?RESTARTS, Runs, C, hd(Us), lists:last(Us), median(Us)]),
    F.

%% ------------------------------------------------------------------ call

handle_call(Req, _From, State) -> {reply, Req, State}.
handle_cast(_, State) -> {noreply, State}.

call_client(Server, Driver) ->
    T0 = now_ns(),
    Ok = call_loop(Server, 0, true),
    Driver ! {call_done, now_ns() - T0, Ok}.

call_loop(_, ?CALLS, Ok) -> Ok;
call_loop(Server, I, Ok) ->
    R = gen_server:call(Server, I, infinity),
    call_loop(Server, I + 1, Ok andalso R =:= I).

call(S, Runs, Placement) ->
    SchedS = case Placement of same -> 1; other -> 2 end,
    {ok, Server} = gen_server:start(?MODULE, server, [{spawn_opt, [{scheduler, SchedS}]}]),
    Self = self(),
    Once = fun() ->
                   spawn_opt(fun() -> call_client(Server, Self) end, [{scheduler, 1}]),
                   receive {call_done, Ns, Ok} -> {Ns / ?CALLS, Ok} end
           end,
    {Ns, Ok} = measure(Runs, Once),
    ok = gen_server:stop(Server),
    {C, F} = check(Ok),
    io:format("RESULT bench=call impl=erlang schedulers=~b placement=~s calls=~b runs=~b check=~s "
              "min_ns=~.1f max_ns=~.1f ns_per_call=~.1f unit=ns~n",
              [S, Placement, ?CALLS, Runs, C, hd(Ns), lists:last(Ns), median(Ns)]),
    F.
