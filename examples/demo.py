"""A short tour of greenlet switching: two greenlets play ping-pong.

Run it with `make demo`, which builds greenlet-rs into .venv first.
"""

import greenlet
from greenlet import GreenletExit, getcurrent


def main():
    impl = getattr(greenlet, "__implementation__", "upstream greenlet")
    print(f"greenlet {greenlet.__version__} ({impl})")
    print(f"  from {greenlet.__file__}")

    def ping_body(rounds):
        ball = 1
        for _ in range(rounds):
            print(f"  ping serves {ball}")
            # The first switch starts pong; later ones resume it.
            ball = pong.switch(ball)
            print(f"  ping got    {ball}")
            ball += 1
        return f"ping is done, the ball is at {ball}"

    def pong_body(ball):
        try:
            while True:
                # Hand the ball back; ping's pong.switch() returns it.
                ball = ping.switch(ball * 10)
        except GreenletExit:
            print("  pong was told to stop")
            raise

    ping = greenlet.greenlet(ping_body)
    pong = greenlet.greenlet(pong_body)
    print("ping-pong:")
    # ping returns to its parent (us, the main greenlet) when it finishes.
    print(" ", ping.switch(3))
    print(f"  ping dead: {ping.dead}; pong dead: {pong.dead}")
    pong.throw()  # raises GreenletExit in pong, which ends it
    print(f"  pong dead: {pong.dead}")

    # switch() passes values both ways.
    def doubler():
        value = getcurrent().parent.switch("ready")
        while value is not None:
            value = getcurrent().parent.switch(value * 2)
        return "doubler stopped"

    d = greenlet.greenlet(doubler)
    print("doubler:", d.switch())
    for n in (1, 21, 100):
        print(f"  {n} -> {d.switch(n)}")
    print(" ", d.switch(None))


if __name__ == "__main__":
    main()
