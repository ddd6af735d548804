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
    assert "Đã thêm 2 mã khách hàng vào danh sách DNC." in page
