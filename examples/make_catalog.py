"""Write the sample catalog used by the README: examples/catalog.xlsx and examples/catalog.csv.

Run `python examples/make_catalog.py`; the output is byte-for-byte the same on every run.

The 20 products are rewritten from real listings: the English ones from the Amazon 2020 crawl and the
Amazon Berkeley Objects samples (the three rows with an `image`), the Chinese ones (Simplified) from the
Shopee title-translation set, converted from Traditional characters and cleaned of promo noise (see
/work/shared/data/*/SOURCE.md). About a third of the attribute cells are deliberately empty, and the title
or description of each such row carries the missing value ("Stainless Steel 304" in the title, color
left empty): exactly what the `attributes` recipe is meant to fill.

catalog.csv is the same table encoded in GB18030, the way a Chinese supplier's Excel exports it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

HERE = Path(__file__).resolve().parent
COLUMNS = [
    "sku", "title", "category", "brand", "color", "material", "size", "weight",
    "price", "currency", "description", "image",
]  # fmt: skip
FIXED_TIME = dt.datetime(2024, 6, 1, 0, 0, 0)

# sku, title, category, brand, color, material, size, weight, price, currency, description, image
PRODUCTS: list[tuple[object, ...]] = [
    ("EN-1001", "AmazonBasics 6W LED Light Bulb, E27, 400 Lumens, Soft White 3000K", "Home & Kitchen",
     "AmazonBasics", "", "", "E27", "0.05 kg", 9.99, "USD",
     "Lasts 15,000 hours and uses only 6 watts: full brightness with no warm-up.", "images/B074M5HPBD.jpg"),
    ("EN-1002", "Starter Yoga Bag, Iron Grey, Polyester Gym Duffel with Mat Pocket", "Bags & Luggage",
     "", "Iron Grey", "", "One Size", "0.45 kg", 24.99, "USD",
     "Lightweight, fast-drying gym bag with a detachable shoulder strap and an exterior yoga-mat pocket.",
     "images/B0799CK52K.jpg"),
    ("EN-1003", "Solimo Vitamin E 400 IU Softgels, 365 Count", "Health & Household", "Solimo", "", "",
     "365 softgels", "0.2 kg", 14.5, "USD",
     "One softgel a day with a meal. No colours, flavours or preservatives.",
     "images/B07GTFSCHB.jpg"),
    ("EN-1004", "Mikasa VSO2000 FIVB Replica Volleyball, Official Size 5", "Sports & Outdoors", "Mikasa",
     "Yellow/Blue", "Synthetic Leather", "", "280 g", 18.93, "USD", "", ""),
    ("EN-1005", "K2 Men's Kinetic 80 Pro Inline Skate, Black White, US 10.5", "Sports & Outdoors", "", "",
     "", "", "3.3 kg", 89.98, "USD", "80 mm wheels and ABEC 5 bearings for fitness skating.", ""),
    ("EN-1006", "Nerf Sports Pro Grip Football, Blue", "Sports & Outdoors", "Nerf", "", "Foam", "Junior",
     "255 g", 16.97, "USD", "", ""),
    ("EN-1007", "Poolmaster Vinyl Water Hammock, Blue", "Sports & Outdoors", "Poolmaster", "Blue", "",
     "", "", 9.99, "USD", "Floats flat on the water; folds small for storage.", ""),
    ("EN-1008", "Industro Stainless Steel 304 Hose Clamps, 10 Pack, 13-19 mm", "Home & Kitchen",
     "Industro", "Silver", "", "", "0.6 kg", 34.27, "USD", "Worm-gear clamps for garden and pool hoses.", ""),
    ("EN-1009", "ARTSCAPE Etched Glass Window Film, 24 x 36 inch, Frosted", "Home & Kitchen", "", "", "Vinyl",
     "", "0.3 kg", 12.99, "USD", "Static-cling privacy film, no adhesive; lets light through.", ""),
    ("EN-1010", "Forum Novelties Men's Suede Cowboy Hat, Brown, One Size", "Clothing & Shoes",
     "Forum Novelties", "", "Faux Suede", "One Size", "120 g", 14.99, "USD", "", ""),
    ("CN-2001", "Imarflex 伊玛 2升 304不锈钢电热水壶 IK-2006", "Home & Kitchen", "Imarflex", "银色", "",
     "2 L", "1.1 kg", 199, "CNY", "双层防烫外壳，水开自动断电。", ""),
    ("CN-2002", "Truvii 经典黑柚木柄珐琅杯 400ml 白色", "Home & Kitchen", "Truvii", "", "珐琅",
     "400 ml", "0.25 kg", 89, "CNY", "柚木手柄不烫手，可直接明火加热。", ""),
    ("CN-2003", "HC STORE 迷你防水双肩包 镭射镜面 银色", "Bags & Luggage", "HC STORE", "", "尼龙", "迷你",
     "0.3 kg", 159, "CNY", "面料防泼水，适合短途出行。", ""),
    ("CN-2004", "KGH 经典15.6英寸笔记本电脑双肩包 黑色 812DA9184", "Bags & Luggage", "KGH", "黑色", "",
     "", "0.9 kg", 239, "CNY", "独立电脑隔层，可放15.6英寸笔记本；牛津布面料。", ""),
    ("CN-2005", "韩版撞色条纹短袖T恤 纯棉 白色 M码", "Clothing & Shoes", "", "", "", "M", "0.2 kg", 59,
     "CNY", "", ""),
    ("CN-2006", "Hello Kitty 凯蒂猫 儿童凉鞋 白/红色 小童 28码", "Clothing & Shoes", "Hello Kitty", "白/红色",
     "", "", "", 129, "CNY", "鞋底为防滑橡胶，魔术贴设计方便穿脱。", ""),
    ("CN-2007", "雷鸟 LT-234 日式木纹桌垫 45 x 60 cm", "Home & Kitchen", "雷鸟", "木纹色", "PVC", "",
     "0.5 kg", 45, "CNY", "", ""),
    ("CN-2008", "Qoopet 多功能宠物背包 粉色 透气网布", "Pet Supplies", "Qoopet", "", "", "M", "0.8 kg",
     199, "CNY",
     "适合8公斤以内的猫狗，侧面网布透气。", ""),
    ("CN-2009", "LeSportsac 缤纷小花斜挎包", "Bags & Luggage", "LeSportsac", "", "", "小号", "0.25 kg",
     399, "CNY", "轻量尼龙面料，印花图案为缤纷小花。", ""),
    ("CN-2010", "adidas BP POWER III L 训练双肩包 黑色 AY5101", "Bags & Luggage", "adidas", "", "聚酯纤维",
     "L", "0.6 kg", 299, "CNY", "大容量主仓，侧袋可放水壶，带挂钩。", ""),
]  # fmt: skip


def write_xlsx(path: Path) -> None:
    """The catalog as an operator would upload it: one 'Products' sheet, bold header, sensible widths."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Products"
    sheet.append(COLUMNS)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for product in PRODUCTS:
        sheet.append([None if value == "" else value for value in product])
    widths = {"A": 10, "B": 60, "C": 20, "D": 16, "E": 12, "F": 12, "G": 12, "H": 10, "K": 60, "L": 24}
    for column, width in widths.items():
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = "A2"
    workbook.properties.created = FIXED_TIME
    buffer = io.BytesIO()
    workbook.save(buffer)
    path.write_bytes(_fixed_zip_times(buffer.getvalue()))


def _fixed_zip_times(data: bytes) -> bytes:
    """Rewrite the zip with fixed entry and document times, so the file is identical on every run."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            data = source.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps 'modified' with the save time
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2024-06-01T00:00:00Z", data)
            target.writestr(fixed, data)
    return out.getvalue()


def write_gb18030_csv(path: Path) -> None:
    """The same table as a Chinese-Windows Excel 'CSV' export: GB18030, CRLF line ends, no BOM."""
    with path.open("w", encoding="gb18030", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for product in PRODUCTS:
            writer.writerow(["" if value is None else value for value in product])


def main() -> None:
    write_xlsx(HERE / "catalog.xlsx")
    write_gb18030_csv(HERE / "catalog.csv")
    print(f"wrote {HERE / 'catalog.xlsx'} and {HERE / 'catalog.csv'} ({len(PRODUCTS)} products)")


if __name__ == "__main__":
    main()
