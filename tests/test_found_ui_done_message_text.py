"""Found by uireview: the console's "done" line after a DNC showed any text a link put in it.

After a DNC the console redirects to `/ui/queue?code=Q&done=dnc&n=2` and the page wrote
"Đã thêm {n} mã khách hàng vào danh sách DNC." with `n` taken from the URL as it was, so a
link sent to a supervisor (`…&done=dnc&n=0. Hệ thống lỗi: gọi ngay 0900 000 000 để`) showed
the sender's sentence inside the console's own status line (escaped, but believable). `n` is
now shown only when it is a whole number; otherwise there is no such line."""

from tests.test_ui import ana, queue  # noqa: F401  (fixtures)

LURE = "0. Hệ thống lỗi: gọi ngay 0900 000 000 để"


def test_the_dnc_done_line_shows_only_a_count(client, ana, queue):  # noqa: F811
    page = client.get("/ui/queue", query_string={"code": queue, "done": "dnc", "n": LURE}).get_data(as_text=True)
    assert "0900 000 000" not in page and 'class="done"' not in page
    page = client.get("/ui/queue", query_string={"code": queue, "done": "dnc", "n": "2"}).get_data(as_text=True)
    assert 'class="done"' not in page  # a count the console did not seal: nobody put 2 ids on it here
    done = client.post("/ui/queue/dnc", data={"csrf": ana, "code": queue, "ids": "KH_A\nKH_B"})
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Đã thêm 2 mã khách hàng vào danh sách DNC." in page


def test_a_link_cannot_make_the_console_say_a_queue_was_stopped(client, ana, queue):  # noqa: F811
    """Found by the console review: `/ui/queue?code=Q&done=stopped` announced a stop that never
    happened (and `next=` carried such a link through the login). Only the session's own
    redirect, sealed with its CSRF token, says so."""
    page = client.get("/ui/queue", query_string={"code": queue, "done": "stopped"}).get_data(as_text=True)
    assert 'class="done"' not in page
    forged = {"code": queue, "done": "stopped", "seal": "0" * 32}
    assert 'class="done"' not in client.get("/ui/queue", query_string=forged).get_data(as_text=True)
    done = client.post("/ui/queue/stop", data={"csrf": ana, "code": queue})
    assert done.status_code == 303
    assert f"Đã dừng hàng đợi {queue}." in client.get(done.headers["Location"]).get_data(as_text=True)
