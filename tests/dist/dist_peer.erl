%% dist_peer - the Erlang side of tests/test_dist.c: a few registered
%% processes a uproc node talks to.  Started with
%%   erl -sname N -s dist_peer start ReadyFile
%% and writes its OS pid to ReadyFile when ready (test_tick stops that
%% process with SIGSTOP).
-module(dist_peer).
-behaviour(gen_server).
-export([start/1, init/1, handle_call/3, handle_cast/2, handle_info/2]).

start([Ready]) ->
    register(echo, spawn(fun echo/0)),
    register(ctl, spawn(fun ctl/0)),
    {ok, _} = gen_server:start({local, calc}, ?MODULE, [], []),
    Tmp = atom_to_list(Ready) ++ ".tmp",
    ok = file:write_file(Tmp, os:getpid()),
    ok = file:rename(Tmp, atom_to_list(Ready)).

%% {From, T} -> From ! {echo, T}
echo() ->
    receive
        {From, T} when is_pid(From) -> From ! {echo, T};
        _ -> ok
    end,
    echo().

%% Terms made here, for the uproc side to echo back: {From, check, T}
%% answers whether T is exactly what was sent.
terms(Self) ->
    {Self, make_ref(), 0, 255, 256, -1, 1 bsl 40, -(1 bsl 62), (1 bsl 63) - 1,
     3.5, -0.0, 1.0e300, ok, 'héllo wörld', [], [1,2,3], "abc", [a | b],
     <<>>, <<1,2,3,255>>, {}, {nested, [{x, <<"y">>}, 1.5]}, self()}.

ctl() ->
    receive
        {From, make_terms} ->
            T = terms(self()),
            From ! {terms, T},
            receive
                {check, T2} -> From ! {checked, T2 =:= T}
            after 5000 -> From ! {checked, timeout}
            end;
        {From, spawn_linkee} ->
            %% a process the uproc side links to; it dies with the reason
            %% it is told
            P = spawn(fun() -> receive {die, R} -> exit(R) end end),
            From ! {linkee, P};
        {From, link_to, Pid} ->
            %% a trapping process linked to a uproc process: reports the
            %% exit reason it gets
            spawn(fun() ->
                          process_flag(trap_exit, true),
                          link(Pid),
                          From ! linked,
                          receive {'EXIT', Pid, R} -> From ! {got_exit, R}
                          after 10000 -> From ! {got_exit, timeout}
                          end
                  end);
        {From, monitor, Pid} ->
            spawn(fun() ->
                          Ref = erlang:monitor(process, Pid),
                          From ! monitoring,
                          receive {'DOWN', Ref, process, Pid, R} -> From ! {got_down, R}
                          after 10000 -> From ! {got_down, timeout}
                          end
                  end);
        {From, call, Server, Req} ->
            %% a gen_server:call from Erlang to a uproc server
            From ! {called, catch gen_server:call(Server, Req, 5000)};
        {From, exit2, Pid, R} ->
            exit(Pid, R),
            From ! exit2_sent;
        {From, nodes} ->
            From ! {nodes, nodes()};
        _ -> ok
    end,
    ctl().

init([]) -> {ok, 0}.
handle_call({add, A, B}, _From, S) -> {reply, A + B, S + 1};
handle_call(count, _From, S) -> {reply, S, S};
handle_call(crash, _From, _S) -> exit(crashed).
handle_cast(_, S) -> {noreply, S}.
handle_info(_, S) -> {noreply, S}.
