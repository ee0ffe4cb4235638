"""Interface text in English and Japanese, translated in the browser (its language picks the table).

Gradio's i18n translates static text in the page (labels, buttons, placeholders, Markdown); values that
handlers return (status lines, chat text) stay in English. ``t("key")`` marks a string for translation;
the ``I18N`` instance is passed to ``launch(i18n=...)`` (see :func:`chat.ui.launch_options`).
"""

from __future__ import annotations

import gradio as gr

EN: dict[str, str] = {
    "title": "# mmchat\nA local, private multimodal assistant. Upload images, click on one to mark a spot, and ask.",
    "image": "Image (click to place a marker)",
    "upload": "Upload images",
    "images": "Images (click one to work on it)",
    "marker_shape": "Marker shape",
    "marker_color": "Marker colour",
    "undo_marker": "Undo marker",
    "clear_markers": "Clear markers",
    "shape_circle": "circle",
    "shape_ellipse": "ellipse",
    "shape_box": "box",
    "shape_arrow": "arrow",
    "shape_cross": "cross",
    "shape_point": "point",
    "color_red": "red",
    "color_green": "green",
    "color_blue": "blue",
    "color_yellow": "yellow",
    "color_purple": "purple",
    "chat": "Chat",
    "chat_input": "Message",
    "chat_placeholder": "Ask about the image, or type /help. Drop images here too.",
    "stop": "Stop",
    "regenerate": "Regenerate",
    "clear_chat": "Clear chat",
    "new_session": "New session",
    "tools": "Tools",
    "som": "Set-of-Mark (number the regions)",
    "som_help": "Numbers the regions of the image; answers that cite [n] highlight those regions.",
    "score": "Score labels",
    "labels": "Labels",
    "labels_placeholder": "cat | dog | bird  (one per line or separated by |)",
    "score_model": "Model",
    "score_plot": "Scores",
    "score_table": "Score table",
    "edit": "Edit",
    "edit_instruction": "Edit instruction",
    "edit_placeholder": "make it snowy (with markers: repaint the marked region)",
    "edit_button": "Edit image",
    "remove_button": "Remove marked object",
    "versions": "Versions (click one to make it current)",
    "download_version": "Download the current version (full size, no markers)",
    "compare": "Compare versions",
    "compare_left": "Left (before)",
    "compare_right": "Right (after)",
    "compare_slider": "Drag the slider to compare",
    "trace": "Tool trace",
    "export": "Export conversation (zip)",
    "export_file": "Download the export",
    "import": "Import a session (zip)",
    "status": "Status",
    "generate": "Generate",
    "sketch": "Sketch (optional: draw the layout, dark lines on white)",
    "generate_prompt": "Describe the picture",
    "generate_placeholder": "a cat on a sofa, photo",
    "generate_seed": "Seed (empty: random)",
    "generate_size": "Size (without a sketch)",
    "generate_button": "Generate image",
}

JA: dict[str, str] = {
    "title": "# mmchat\nローカルで動くプライベートなマルチモーダル・アシスタント。画像をアップロードし、クリックで印を付けて質問してください。",
    "image": "画像(クリックでマーカーを置く)",
    "upload": "画像をアップロード",
    "images": "画像一覧(クリックで切り替え)",
    "marker_shape": "マーカーの形",
    "marker_color": "マーカーの色",
    "undo_marker": "マーカーを取り消す",
    "clear_markers": "マーカーをすべて消す",
    "shape_circle": "円",
    "shape_ellipse": "楕円",
    "shape_box": "四角",
    "shape_arrow": "矢印",
    "shape_cross": "バツ印",
    "shape_point": "点",
    "color_red": "赤",
    "color_green": "緑",
    "color_blue": "青",
    "color_yellow": "黄",
    "color_purple": "紫",
    "chat": "チャット",
    "chat_input": "メッセージ",
    "chat_placeholder": "画像について質問するか /help と入力してください。画像もここにドロップできます。",
    "stop": "停止",
    "regenerate": "もう一度生成",
    "clear_chat": "会話を消去",
    "new_session": "新しいセッション",
    "tools": "ツール",
    "som": "Set-of-Mark(領域に番号を付ける)",
    "som_help": "画像の領域に番号を付けます。回答が [n] を引用するとその領域が強調表示されます。",
    "score": "ラベルを採点",
    "labels": "ラベル",
    "labels_placeholder": "猫 | 犬 | 鳥(1 行に 1 つ、または | で区切る)",
    "score_model": "モデル",
    "score_plot": "スコア",
    "score_table": "スコア表",
    "edit": "編集",
    "edit_instruction": "編集の指示",
    "edit_placeholder": "雪景色にする(マーカーがあればその領域を描き直す)",
    "edit_button": "画像を編集",
    "remove_button": "印を付けた物体を消す",
    "versions": "バージョン(クリックで現在のものにする)",
    "download_version": "現在のバージョンをダウンロード(原寸・マーカーなし)",
    "compare": "バージョンを比較",
    "compare_left": "左(変更前)",
    "compare_right": "右(変更後)",
    "compare_slider": "スライダーを動かして比較",
    "trace": "ツールの実行記録",
    "export": "会話をエクスポート(zip)",
    "export_file": "エクスポートをダウンロード",
    "import": "セッションをインポート(zip)",
    "status": "状態",
    "generate": "画像生成",
    "sketch": "スケッチ(任意:白地に黒い線で構図を描く)",
    "generate_prompt": "描いてほしい絵の説明",
    "generate_placeholder": "ソファの上の猫、写真",
    "generate_seed": "シード(空欄:ランダム)",
    "generate_size": "サイズ(スケッチなしのとき)",
    "generate_button": "画像を生成",
}

assert EN.keys() == JA.keys(), "every interface string needs both languages"

PREFIX = "mmchat_"  # Gradio's own tables use keys like "image" and "chat" (nested): ours must not collide
I18N = gr.I18n(**{lang: {PREFIX + k: v for k, v in table.items()} for lang, table in (("en", EN), ("ja", JA))})


def t(key: str):
    """A translatable interface string (translated in the browser)."""
    if key not in EN:
        raise KeyError(f"no interface string '{key}'")
    return I18N(PREFIX + key)
