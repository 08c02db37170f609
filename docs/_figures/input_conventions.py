"""The same five ratings in the two input conventions (user-guide figure)."""

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

rows = [("ann", "a", 5), ("ann", "b", 3), ("bob", "a", 4), ("bob", "c", 1), ("cy", "b", 2)]
users, items = ["ann", "bob", "cy"], ["a", "b", "c"]
colors = {"ann": "#cfe2f3", "bob": "#d9ead3", "cy": "#fce5cd"}

fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(8.6, 3.3), gridspec_kw={"width_ratios": [1, 1]})

# -- interaction table: one row per interaction --------------------------------------
ax_t.set_xlim(0, 3.6)
ax_t.set_ylim(-0.2, 6.6)
ax_t.axis("off")
header = ["user", "item", "y (rating)"]
widths = [1.0, 1.0, 1.4]
x0 = [0.0, 1.0, 2.0]
for j, h in enumerate(header):
    ax_t.add_patch(Rectangle((x0[j], 5), widths[j], 0.9, fc="#eeeeee", ec="black"))
    ax_t.text(x0[j] + widths[j] / 2, 5.45, h, ha="center", va="center", weight="bold")
for i, (u, it, r) in enumerate(rows):
    y = 4 - i
    for j, v in enumerate((u, it, r)):
        ax_t.add_patch(Rectangle((x0[j], y), widths[j], 1, fc=colors[u], ec="black", lw=0.8))
        ax_t.text(x0[j] + widths[j] / 2, y + 0.5, str(v), ha="center", va="center")
ax_t.set_title("interaction table (DataFrame)\none sample = one interaction", fontsize=10)

# -- user x item matrix: one row per user ----------------------------------------------
ax_m.set_xlim(-1.2, 3.2)
ax_m.set_ylim(-0.4, 4.4)
ax_m.axis("off")
value = {(u, it): r for u, it, r in rows}
for j, it in enumerate(items):
    ax_m.text(j + 0.5, 3.35, it, ha="center", va="center", weight="bold")
for i, u in enumerate(users):
    y = 2 - i
    ax_m.text(-0.15, y + 0.5, u, ha="right", va="center", weight="bold")
    for j, it in enumerate(items):
        stored = (u, it) in value
        ax_m.add_patch(Rectangle((j, y), 1, 1, fc=colors[u] if stored else "white",
                                 ec="black", lw=0.8))
        ax_m.text(j + 0.5, y + 0.5, str(value[(u, it)]) if stored else "\u00b7",
                  ha="center", va="center", color="black" if stored else "#999999")
ax_m.text(1.5, 3.85, "items (columns)", ha="center", va="center", fontsize=9)
ax_m.text(-1.05, 1.5, "users\n(rows)", ha="center", va="center", fontsize=9, rotation=90)
ax_m.text(1.5, -0.3, "stored entries = interactions, values = targets; \u00b7 = not stored",
          ha="center", va="center", fontsize=8)
ax_m.set_title("user x item matrix (scipy sparse or dense)\none sample = one user",
               fontsize=10)

fig.tight_layout()
