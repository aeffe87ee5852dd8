"""The HTML pages' one style sheet (report, compare, monitor), inlined in each page."""

CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:20px 28px}
h1{font-size:22px;margin:4px 0}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd}
.sub{color:#666}.sub.first{color:#a33;font-weight:600}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:8px 14px;min-width:130px}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
.sev-high{border-left:5px solid #D1495B}.sev-medium{border-left:5px solid #EDA247}.sev-info{border-left:5px solid #8aa}
.finding{background:#fff;padding:8px 12px;margin:6px 0;border-radius:4px}
table{border-collapse:collapse;background:#fff;font-size:13px}th,td{padding:4px 9px;border-bottom:1px solid #eee}
th{background:#f0f0f0;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;background:#fff;border:1px solid #e2e2e2;margin:6px 0}
dl dt{font-weight:600;margin-top:6px}dl dd{margin-left:18px;color:#444}
.warn li{color:#7a4a00}
"""
