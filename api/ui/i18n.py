"""The console's words in Vietnamese (the default) and English, and numbers, money and times
written the Vietnamese way in both: `5.000.000 ₫`, `13/07/2021 14:05:09` in the configured zone."""

from __future__ import annotations

import datetime as dt
import math

LANGUAGES = ("vi", "en")
DEFAULT = "vi"

# key: (Vietnamese, English)
LABELS = {
    "title": ("Bảng điều khiển autocall", "autocall console"),
    "skip": ("Bỏ qua đến nội dung chính", "Skip to main content"),
    "queues": ("Hàng đợi", "Queues"),
    "templates": ("Kịch bản", "Templates"),
    "system": ("Hệ thống", "System"),
    "audit": ("Nhật ký thao tác", "Audit log"),
    "logout": ("Đăng xuất", "Log out"),
    "login": ("Đăng nhập", "Log in"),
    "username": ("Tên đăng nhập", "User name"),
    "password": ("Mật khẩu", "Password"),
    "login_failed": ("Sai tên đăng nhập hoặc mật khẩu.", "Wrong user name or password."),
    "login_limited": (
        "Quá nhiều lần đăng nhập sai. Vui lòng thử lại sau {minutes} phút.",
        "Too many failed logins. Try again in {minutes} minutes.",
    ),
    "login_insecure": (
        "Bảng điều khiển phải được mở qua HTTPS (proxy TLS, docs/ui.md): qua HTTP thường trình duyệt"
        " không giữ cookie đăng nhập nên không thể đăng nhập.",
        "The console must be opened over HTTPS (the TLS proxy, docs/ui.md): over plain HTTP the browser"
        " keeps no login cookie, so no login can work.",
    ),
    "csrf_failed": (
        "Biểu mẫu đã hết hạn hoặc không hợp lệ; vui lòng tải lại trang.",
        "The form has expired or is not valid; reload the page.",
    ),
    "forbidden": ("Tài khoản của bạn chỉ được xem.", "Your account may only view."),
    "not_found": ("Không tìm thấy.", "Not found."),
    "internal_error": ("Lỗi máy chủ; chi tiết đã được ghi vào nhật ký.", "Server error; the details are in the log."),
    "signed_in_as": ("Đăng nhập: {user} ({role})", "Signed in as {user} ({role})"),
    "role_viewer": ("xem", "viewer"),
    "role_operator": ("vận hành", "operator"),
    "language": ("Ngôn ngữ", "Language"),
    "queue": ("Hàng đợi", "Queue"),
    "template": ("Kịch bản", "Template"),
    "state": ("Trạng thái", "State"),
    "stop_reason": ("Lý do dừng", "Stop reason"),
    "progress": ("Tiến độ", "Progress"),
    "in_call": ("Đang gọi / tối đa", "In call / max"),
    "success": ("Thành công", "Succeeded"),
    "failed": ("Thất bại", "Failed"),
    "dnc": ("Không gọi (DNC)", "DNC"),
    "deleted": ("Đã xoá", "Deleted"),
    "pending": ("Đang chờ", "Waiting"),
    "calling": ("Đang gọi", "Calling"),
    "calls_per_minute": ("Cuộc gọi/phút", "Calls/min"),
    "eta": ("Dự kiến xong", "ETA"),
    "eta_unknown": ("chưa rõ", "unknown"),
    "eta_done": ("đã xong", "done"),
    "running": ("đang chạy", "running"),
    "stopped": ("đã dừng", "stopped"),
    "no_queue": ("Chưa có hàng đợi nào.", "No live queue."),
    "stop": ("Dừng hàng đợi", "Stop queue"),
    "start": ("Chạy tiếp", "Start queue"),
    "stopped_done": ("Đã dừng hàng đợi {code}.", "Queue {code} stopped."),
    "started_done": ("Đã chạy tiếp hàng đợi {code}.", "Queue {code} started."),
    "dnc_done": ("Đã thêm {n} mã khách hàng vào danh sách DNC.", "{n} customer ids added to the DNC list."),
    "dnc_add": ("Thêm mã khách hàng vào DNC", "Add customer ids to the DNC list"),
    "dnc_ids": ("Mã khách hàng (mỗi dòng một mã)", "Customer ids (one per line)"),
    "dnc_empty": ("Chưa nhập mã khách hàng nào.", "No customer id given."),
    "dnc_too_many": ("Tối đa {n} mã mỗi lần.", "At most {n} ids at a time."),
    "dnc_bad_id": ("Mã khách hàng không hợp lệ: {id}", "Not a valid customer id: {id}"),
    "by_cause": ("Cuộc gọi theo mã kết thúc", "Calls by hangup cause"),
    "by_result": ("Khách hàng theo kết quả IVR", "Customers by IVR result"),
    "spark": ("Cuộc gọi mỗi phút (30 phút qua)", "Calls per minute (last 30 minutes)"),
    "timeline": ("Cuộc gọi mỗi phút (60 phút qua)", "Calls per minute (last 60 minutes)"),
    "customers": ("Khách hàng", "Customers"),
    "customer": ("Khách hàng", "Customer"),
    "all_states": ("Tất cả", "All"),
    "search": ("Tìm theo mã hoặc số điện thoại", "Search by id or number"),
    "filter": ("Lọc", "Filter"),
    "csv": ("Tải CSV các cuộc gọi", "Download the calls as CSV"),
    "mobiles": ("Số điện thoại", "Numbers"),
    "round": ("Vòng", "Round"),
    "last_cause": ("Lý do gần nhất", "Last cause"),
    "result": ("Kết quả", "Result"),
    "updated": ("Cập nhật", "Updated"),
    "page_of": ("Trang {page}/{pages} ({total} khách hàng)", "Page {page} of {pages} ({total} customers)"),
    "previous": ("Trang trước", "Previous"),
    "next": ("Trang sau", "Next"),
    "none": ("Không có.", "None."),
    "count": ("Số lượng", "Count"),
    "fields": ("Thông tin", "Fields"),
    "attempts": ("Các cuộc gọi", "Calls"),
    "number": ("Số gọi", "Number"),
    "started": ("Bắt đầu", "Started"),
    "answered": ("Trả lời", "Answered"),
    "ended": ("Kết thúc", "Ended"),
    "cause": ("Mã kết thúc", "Hangup cause"),
    "sip_status": ("Mã SIP", "SIP status"),
    "talk_seconds": ("Thời gian nói (giây)", "Talk (s)"),
    "keys": ("Phím bấm", "Keys"),
    "outcome": ("Kết cục", "Outcome"),
    "next_call": ("Gọi lại lúc", "Next call at"),
    "listen": ("Nghe cuộc gọi", "Listen to the call"),
    "listen_customer": ("Nghe cuộc gọi của khách hàng này", "Listen to this customer's call"),
    "check": ("Kiểm tra", "Check"),
    "check_ok": ("Hợp lệ", "Valid"),
    "sample": ("Khách hàng mẫu", "Sample customer"),
    "prompts": ("Các tệp âm thanh sẽ phát", "Files the call plays"),
    "transcript": ("Khách hàng nghe (không bấm phím)", "What a callee who presses no key hears"),
    "render_failed": ("Không dựng được cuộc gọi: {reason}", "Cannot render the call: {reason}"),
    "step": ("Bước", "Step"),
    "dialer": ("Trình quay số", "Dialer"),
    "esl": ("Kết nối FreeSWITCH (ESL)", "FreeSWITCH link (ESL)"),
    "not_heard": (
        "Không nhận được tin từ {name} trong {seconds} giây: autocall-daemon có đang chạy?",
        "Not heard from {name} for {seconds} s: is autocall-daemon running?",
    ),
    "state_unknown": ("Không rõ trạng thái: {why}.", "State unknown: {why}."),
    "held_by": (
        "autocall-daemon (pid {pid}) đang giữ cơ sở dữ liệu.",
        "autocall-daemon (pid {pid}) holds the database.",
    ),
    "held_by_none": (
        "Không có autocall-daemon nào giữ cơ sở dữ liệu: nó có đang chạy?",
        "No autocall-daemon holds the database: is it running?",
    ),
    "no_dialer": ("Chưa có trình quay số nào chạy với cơ sở dữ liệu này.", "No dialer has run on this database."),
    "nodes": ("Các nút quay số", "Dialer nodes"),
    "window": ("Khung giờ gọi", "Calling window"),
    "window_open": ("Đang mở: {start}–{end} ({tz})", "Open now: {start}–{end} ({tz})"),
    "window_closed": (
        "Đang đóng: chỉ gọi {start}–{end} ({tz}); mở lại lúc {at}",
        "Closed: calls only {start}–{end} ({tz}); opens at {at}",
    ),
    "daily_cap": ("Giới hạn cuộc gọi mỗi ngày", "Daily cap"),
    "daily_cap_hits": (
        "{n} khách hàng đã đủ {cap} cuộc gọi hôm nay",
        "{n} customers have had their {cap} calls today",
    ),
    "daily_cap_off": ("Không giới hạn", "No cap"),
    "webhooks": ("Webhook (hộp thư đi)", "Webhooks (outbox)"),
    "webhooks_line": (
        "{waiting} chờ gửi ({failing} đang lỗi), {dead} hỏng, {undispatched} sự kiện chưa phân phát",
        "{waiting} waiting ({failing} failing), {dead} dead, {undispatched} events not yet dispatched",
    ),
    "webhooks_off": ("Chưa cấu hình webhook.", "No webhook configured."),
    "now": ("Bây giờ", "Now"),
    "at": ("Thời điểm", "When"),
    "who": ("Người thực hiện", "Who"),
    "action": ("Thao tác", "Action"),
    "target": ("Đối tượng", "Target"),
    "detail": ("Chi tiết", "Detail"),
    "live_error": ("Mất kết nối tới máy chủ; đang thử lại.", "Lost the server; retrying."),
}


def label(lang: str, key: str, **values) -> str:
    """The label `key` in `lang`, with `values` put in its {placeholders}."""
    vi, en = LABELS[key]
    text = en if lang == "en" else vi
    return text.format(**values) if values else text


def number(n) -> str:
    """`1234567` → `1.234.567` (the Vietnamese thousands separator)."""
    if n is None:
        return ""
    if isinstance(n, float) and not n.is_integer():
        whole, _, fraction = f"{n:,.1f}".partition(".")
        return whole.replace(",", ".") + "," + fraction
    return f"{int(n):,}".replace(",", ".")


def money(value) -> str:
    """`5000000` → `5.000.000 ₫`, every digit of a whole number however large; text that is no
    finite number ("NaN", "1e400") is shown as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{number(value)} ₫"  # float() of one over 1e308 raises OverflowError
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    if not math.isfinite(amount):
        return str(value)
    return f"{number(round(amount))} ₫"


def date(value) -> str:
    """`2021-07-13` → `13/07/2021`; anything else as it is."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    try:
        return dt.date.fromisoformat(value[:10]).strftime("%d/%m/%Y")
    except ValueError:
        return value


def when(epoch, tz, *, seconds: bool = True) -> str:
    """Epoch seconds → `13/07/2021 14:05:09` in `tz`."""
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(epoch, tz).strftime("%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M")


def clock(epoch, tz) -> str:
    """Epoch seconds → `14:05:09` in `tz`."""
    return "" if epoch is None else dt.datetime.fromtimestamp(epoch, tz).strftime("%H:%M:%S")


def duration(seconds) -> str:
    """`3725` → `1 h 02 min`; `125` → `2 min 05 s`."""
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


MONEY_FIELDS = ("upcoming_amount", "total_ovd_amount")
DATE_FIELDS = ("upcoming_due_date", "due_date")


def field(name: str, value) -> str:
    """A customer field for the page: amounts as money, due dates as dates."""
    if name in MONEY_FIELDS or name.endswith("_amount"):
        return money(value)
    if name in DATE_FIELDS or name.endswith("_date"):
        return date(value)
    return "" if value is None else str(value)
