"""Japanese for the page's changing text (see :mod:`chat.ui.texts`): English sentence -> Japanese sentence.
``{name}`` is put back as it was, ``{t:name}`` translated too."""

from __future__ import annotations

JA_WORDS: dict[str, str] = {
    "Warning": "警告",
    "#": "#",
    "tool": "ツール",
    "arguments": "引数",
    "seconds": "秒",
    "result": "結果",
    "decision": "判断",
    "label": "ラベル",
    "score": "スコア",
    "Make current": "現在のバージョンにする",
    "Compare with parent": "元のバージョンと比較",
    "Download": "ダウンロード",
    "done": "完了",
    "Done.": "完了しました。",
    "Untitled": "無題",
    "New session": "新しいセッション",
    # marker shapes and colours (as the toolbar names them)
    "circle": "円", "ellipse": "楕円", "box": "四角", "arrow": "矢印", "cross": "バツ", "point": "点",
    "red": "赤", "green": "緑", "blue": "青", "yellow": "黄", "purple": "紫",
}

JA: dict[str, str] = {
    # status lines
    "Ready. Upload an image to begin.": "準備完了。画像をアップロードしてください。",
    "Ready. Active image {image} ({size}).": "準備完了。作業中の画像: {image}({size})。",
    "Ready. Active image {image} ({size}, {n} marker).": "準備完了。作業中の画像: {image}({size}、マーカー {n} 個)。",
    "Ready. Active image {image} ({size}, {n} markers).": "準備完了。作業中の画像: {image}({size}、マーカー {n} 個)。",
    "Ready.": "準備完了。",
    "Active image {image} ({size}).": "作業中の画像: {image}({size})。",
    "Active image {image} ({size}, {n} marker).": "作業中の画像: {image}({size}、マーカー {n} 個)。",
    "Active image {image} ({size}, {n} markers).": "作業中の画像: {image}({size}、マーカー {n} 個)。",
    "Thinking…": "考えています…",
    "Stopping…": "停止しています…",
    "Stopped.": "停止しました。",
    "Nothing to stop.": "停止するものはありません。",
    "Chat cleared.": "会話を消去しました。",
    "Markers cleared.": "マーカーをすべて消しました。",
    "Removed the last marker.": "最後のマーカーを取り消しました。",
    "There is no marker to remove.": "取り消すマーカーはありません。",
    "Queued: it is answered when the current answer ends.": "順番待ち: 今の回答が終わると回答します。",
    "Waiting for your answer: say the number of the place you mean (the places are numbered on the image).":
        "あなたの答えを待っています: どの場所のことか番号で答えてください(画像に番号が付いています)。",
    "Working…": "処理中…",
    "Running {tool}…": "{tool} を実行中…",
    "{tool}: done": "{tool}: 完了",
    "{tool}: Error: {t:error}": "{tool}: エラー: {t:error}",
    "Error: {t:error}": "エラー: {t:error}",
    "Selecting the object…": "物体を選んでいます…",
    "Added {ids}. Click the image to mark a spot.": "{ids} を追加しました。画像をクリックすると印を付けられます。",
    "Added {ids}. ({notes}) Click the image to mark a spot.":
        "{ids} を追加しました。({notes})画像をクリックすると印を付けられます。",
    "Marker {n} ({shape}, {color}) at ({x}, {y}) on {image}.": "{image} の ({x}, {y}) にマーカー {n}({t:shape}、{t:color})を置きました。",
    "Marker {n} ({shape}, {color}) fitted around the object SAM found under {clicks} on {image}.":
        "{image} で SAM が見つけた物体({clicks})を囲むマーカー {n}({t:shape}、{t:color})を置きました。",
    "Marker {n} ({shape}, {color}) refined around the object SAM found under {clicks} on {image}.":
        "{image} で SAM が見つけた物体({clicks})に合わせてマーカー {n}({t:shape}、{t:color})を修正しました。",
    "Ask about it, score it or edit it.": "質問・採点・編集ができます。",
    "{version} is now the current version.": "{version} を現在のバージョンにしました。",
    "Current version: {version}, made from {parent} ({t:note}).": "現在のバージョン: {version}({parent} から作成、{t:note})。",
    "Current version: {version} ({t:note}).": "現在のバージョン: {version}({t:note})。",
    "original": "元画像",
    "edit: {what}": "編集: {what}",
    "remove: {what}": "消去: {what}",
    "Comparing {a} (left) with {b} (right): drag the slider.": "{a}(左)と {b}(右)を比較中: スライダーを動かしてください。",
    "Comparing {a} (left) with {b} (right) (the same version twice): drag the slider.":
        "{a}(左)と {b}(右)を比較中(同じバージョン): スライダーを動かしてください。",
    "{a} (left) and {b} (right).": "{a}(左)と {b}(右)。",
    "{a} (left) and {b} (right) (the same version twice).": "{a}(左)と {b}(右)(同じバージョン)。",
    "{name}: {w}x{h}, full resolution, without markers.": "{name}: {w}x{h}、原寸、マーカーなし。",
    "{name}: the original upload, as it was sent (v1 is a smaller working copy).":
        "{name}: アップロードされた元のファイル(v1 は縮小した作業用コピー)。",
    "Downloading {name}.": "{name} をダウンロードしています。",
    "{name} is {size} MB, more than the {limit} MB a file can have here; make it smaller (e.g. save it as a JPEG) "
    "and upload it again.": "{name} は {size} MB で、ここでアップロードできる {limit} MB を超えています。小さくして"
                            "(例えば JPEG で保存して)もう一度アップロードしてください。",
    "That file is too big to upload; make it smaller and upload it again.":
        "ファイルが大きすぎてアップロードできません。小さくしてもう一度アップロードしてください。",
    "The export waits for the running answer: the download starts when it ends (or press Stop).":
        "エクスポートは実行中の回答を待っています: 回答が終わるとダウンロードが始まります(停止を押しても始まります)。",
    "The answer is still running, so nothing was exported; press Export again when it ends, or press Stop.":
        "回答がまだ実行中のため、エクスポートしませんでした。終わってからもう一度エクスポートを押すか、停止を押してください。",
    "Resumed the session: {summary}": "セッションを再開しました: {summary}",
    "Imported the session: {summary}": "セッションをインポートしました: {summary}",
    "Renamed the session to '{name}'.": "セッション名を「{name}」にしました。",
    "Deleted the session '{name}' and its files.": "セッション「{name}」とそのファイルを削除しました。",
    "Start a new session? This one stays in the list of sessions.":
        "新しいセッションを始めますか? 今のセッションはセッション一覧に残ります。",
    "Delete the session '{name}' for good? Its conversation and its {n} image with every version are removed from this computer.":
        "セッション「{name}」を完全に削除しますか? 会話と画像 {n} 枚(すべてのバージョン)がこのコンピューターから消えます。",
    "Delete the session '{name}' for good? Its conversation and its {n} images with every version are removed from this computer.":
        "セッション「{name}」を完全に削除しますか? 会話と画像 {n} 枚(すべてのバージョン)がこのコンピューターから消えます。",
    "**{name}** · session `{id}`": "**{t:name}** · セッション `{id}`",
    "{images}, {versions}, {messages}.": "{t:images}、{t:versions}、{t:messages}。",
    "{n} image": "画像 {n} 枚", "{n} images": "画像 {n} 枚",
    "{n} version": "バージョン {n} 個", "{n} versions": "バージョン {n} 個",
    "{n} message": "メッセージ {n} 件", "{n} messages": "メッセージ {n} 件",
    "✓ {t:text}": "✓ {t:text}",
    "Note: nothing is marked on {image}; click the image to place a marker, then ask again.":
        "注意: {image} には何も印が付いていません。画像をクリックしてマーカーを置いてから、もう一度質問してください。",
    "With one label CLIP always gives 1.00: its scores are shares among the labels given.":
        "ラベルが 1 つだと CLIP は必ず 1.00 を返します(スコアは与えたラベル同士の割合です)。",
    "Add other labels to compare, or use SigLIP, which scores each label on its own.":
        "比較するラベルを追加するか、ラベルごとに単独で採点する SigLIP を使ってください。",
    "{given} was rounded to {rounded} (sides are multiples of 8).": "{given} は {rounded} に丸めました(辺は 8 の倍数)。",
    "⏳ queued: answered after the current answer": "⏳ 順番待ち: 今の回答のあとに回答します",
    "Loading {name}": "{name} を読み込み中",
    "Loading {name} {bar}": "{name} を読み込み中 {bar}",
    # problems a person can fix (UserError sentences)
    "There is no image yet; upload one first.": "まだ画像がありません。先にアップロードしてください。",
    "Type a message first.": "先にメッセージを入力してください。",
    "Type some labels to score, e.g. 'cat | dog'.": "採点するラベルを入力してください(例: 猫 | 犬)。",
    "Give the labels to score after /score, e.g. '/score cat | dog'.":
        "/score の後に採点するラベルを書いてください(例: /score 猫 | 犬)。",
    "Type an edit instruction, e.g. 'make it snowy'.": "編集の指示を入力してください(例: 雪景色にする)。",
    "Describe the picture to make, e.g. 'a cat on a sofa'.": "作りたい絵を説明してください(例: ソファの上の猫)。",
    "Choose one or more image files to upload.": "アップロードする画像ファイルを選んでください。",
    "Choose an exported session (.zip) to import.": "インポートするセッション(.zip)を選んでください。",
    "Type a name for the session first.": "先にセッション名を入力してください。",
    "There is nothing to regenerate yet; ask something first.": "まだもう一度生成するものがありません。先に何か質問してください。",
    "An answer is running in this session; wait for it or press Stop, then try again.":
        "このセッションでは回答の生成中です。終わるまで待つか停止を押してから、もう一度試してください。",
    "The assistant is still working on this session; wait a moment or press Stop.":
        "アシスタントはまだこのセッションで作業中です。少し待つか停止を押してください。",
    "Stop the running answer first, or wait for it, then {t:action}.":
        "先に実行中の回答を停止するか終わるまで待ってから、{t:action}。",
    "start a new session": "新しいセッションを始めてください",
    "resume another session": "別のセッションを開いてください",
    "import a session": "セッションをインポートしてください",
    "delete the session": "セッションを削除してください",
    "There is no saved session with that id; check it, or import an export instead.":
        "その ID の保存済みセッションはありません。ID を確かめるか、エクスポートをインポートしてください。",
    "There is no saved session with that id.": "その ID の保存済みセッションはありません。",
    "This session no longer exists; a new one was started.": "このセッションはもうありません。新しいセッションを始めました。",
    "That click did not land on the image; click on the picture itself.": "クリックが画像の外でした。画像そのものをクリックしてください。",
    "That click is outside the image ({size} as shown); click on the picture itself.":
        "クリックが画像({size})の外でした。画像そのものをクリックしてください。",
    "Move the cursor with the arrow keys, then press Enter to place a marker.":
        "矢印キーでカーソルを動かし、Enter でマーカーを置いてください。",
    "There is no image '{ref}' in this session (images: {known}).": "このセッションに画像「{ref}」はありません(画像: {known})。",
    "Image {image} has no version {n} (it has {count}).": "画像 {image} にバージョン {n} はありません({count} 個あります)。",
    "Give the size as WIDTHxHEIGHT, each side 64 to 1024 pixels, e.g. 640x448; '{raw}' is not one.":
        "サイズは 幅x高さ で、各辺 64〜1024 ピクセルで指定してください(例: 640x448)。「{raw}」は使えません。",
    "Each side must be 64 to 1024 pixels; {size} is not.": "各辺は 64〜1024 ピクセルにしてください。{size} は範囲外です。",
    "The seed must be a whole number from 0 to {max}, not {value}.": "シードは 0〜{max} の整数にしてください({value} は使えません)。",
    "Steps must be a whole number from 1 to {max}, not {value}.": "ステップ数は 1〜{max} の整数にしてください({value} は使えません)。",
    "Guidance must be a number from 0 to 30, not {value}.": "ガイダンスは 0〜30 の数にしてください({value} は使えません)。",
    "To remove something, click on it in {image} first (it has no markers).":
        "消したいものを {image} の上でクリックしてから押してください(マーカーがありません)。",
    "Image {image} has no markers; click on the image to place one first.":
        "画像 {image} にマーカーがありません。先に画像をクリックしてマーカーを置いてください。",
    "{name} is an original: it was not made from another version.": "{name} は元画像です(別のバージョンから作られていません)。",
    "Exclude clicks need SAM regions; set tools.click_region: sam in the config to use them.":
        "除外クリックには SAM 領域が必要です(設定で tools.click_region: sam にしてください)。",
    "There is no object to exclude from yet; click on the object with 'New object' first.":
        "除外する物体がまだありません。先に「新しい物体」で物体をクリックしてください。",
    "The message is {n} characters long; the limit is {limit}.": "メッセージが {n} 文字あります。上限は {limit} 文字です。",
    # tool replies and the router's fixed text
    "Edited {image} ({mode}, seed {seed}): the new version is {version}.":
        "{image} を編集しました({mode}、シード {seed})。新しいバージョンは {version} です。",
    "Removed {target} from {image} (seed {seed}): the new version is {version}.":
        "{image} から {target} を消しました(シード {seed})。新しいバージョンは {version} です。",
    "Made {image} ({size}, seed {seed}).": "{image} を作りました({size}、シード {seed})。",
    # finding by words (find, remove the dog, replace the cat with a tiger)
    "Grounded answers: the things each answer mentions are found and drawn on the image.":
        "回答の根拠を表示: 回答が触れているものを画像の中で探して描きます。",
    "Grounded answers are off.": "回答の根拠の表示をオフにしました。",
    "Shown on {image}: {legend}.": "{image} に表示: {legend}。",
    "Nothing the answer mentions was found on {image}.": "回答が触れているものは {image} に見つかりませんでした。",
    "More than one place could be '{phrase}' (numbered on the image): which one do you mean, {ids}? Say the "
    "number (or click on it and ask again).":
        "「{phrase}」に当たる場所が複数あります(画像に番号を表示)。どれですか({ids})?番号で答えてください"
        "(またはそこをクリックしてもう一度頼んでください)。",
    "More than one place could be '{phrase}': which one, {ids}? Say the number (or click on it and ask again).":
        "「{phrase}」に当たる場所が複数あります。どれですか({ids})?番号で答えてください"
        "(またはそこをクリックしてもう一度頼んでください)。",
    "The chat model's box {box} is empty or outside the image.": "チャットモデルの枠 {box} は空か、画像の外です。",
    "The chat model's box {box} is empty or outside the image. Scored by CLIP alone.":
        "チャットモデルの枠 {box} は空か、画像の外です。CLIP だけで採点しました。",
    "No SAM model: the candidates are the Set-of-Mark regions only.":
        "SAM モデルがないため、候補は Set-of-Mark の領域だけです。",
    "{n} regions, ambiguous: asked which": "{n} 領域、どれか曖昧なので質問しました",
    "{n} region": "{n} 領域",
    "{n} regions": "{n} 領域",
    "marked region {n}": "領域 {n} に印",
    "nothing found": "見つかりませんでした",
    "'{phrase}': {n} places, asked which": "「{phrase}」: {n} か所、どれか質問しました",
    "grounded answers are on": "回答の根拠の表示がオン",
    "Scored by CLIP alone.": "CLIP だけで採点しました。",
    "the question names {thing}": "質問が {thing} を名指し",
    "I could not find '{phrase}' in the image; click on it, or describe it differently.":
        "画像の中に「{phrase}」が見つかりませんでした。クリックするか、別の言い方で説明してください。",
    "Say what to remove (e.g. 'remove the dog'), or click on it in {image} first.":
        "何を消すか言ってください(例: 'remove the dog')。または先に {image} の中でそれをクリックしてください。",
    "A marker is on region 1 of {image}: add to it or cut from it with clicks, or undo it.":
        "{image} の領域 1 にマーカーを置きました。クリックで広げたり削ったり、取り消したりできます。",
    "Marked region {n} for '{phrase}' on {image}: add to it or cut from it with clicks, or undo it.":
        "{image} の「{phrase}」として領域 {n} に印を付けました。クリックで広げたり削ったり、取り消したりできます。",
    "Numbered {n} regions of {image} (Set-of-Mark); refer to them as [1] to [{m}].":
        "{image} の領域 {n} か所に番号を付けました(Set-of-Mark)。[1]〜[{m}] で参照できます。",
    "Numbered 1 region of {image} (Set-of-Mark); refer to it as [1].":
        "{image} の領域 1 か所に番号を付けました(Set-of-Mark)。[1] で参照できます。",
    "Drew {n} marker on {image}.": "{image} にマーカー {n} 個を描きました。",
    "Drew {n} markers on {image}.": "{image} にマーカー {n} 個を描きました。",
    "{model} scores for {image} ({mode}): {scores}": "{image} の {model} スコア({mode}): {scores}",
    "{model} scores for the marked region of {image} ({mode}): {scores}": "{image} の印の領域の {model} スコア({mode}): {scores}",
    "Caption of {image}: {text}": "{image} の説明: {text}",
    "Answer to '{question}' about {image} (BLIP): {answer}": "{image} についての「{question}」への答え(BLIP): {answer}",
    "Classification of {image}: {rest}": "{image} の分類: {rest}",
    "Type a question, or a command such as /caption; /help lists them.":
        "質問か /caption などのコマンドを入力してください。/help で一覧を表示します。",
    "Unknown command /{name}.": "/{name} というコマンドはありません。",
    "Cancelled.": "中止しました。",
    "Commands (or just ask in words):": "コマンド(普通の文章で質問しても構いません):",
    # the trace's decisions in plain words
    "a button on the page": "ページのボタン",
    "a command you typed": "入力したコマンド",
    "your answer to 'which one?'": "「どれですか？」への答え",
    "the model chose to answer in words": "モデルが文章で答えることを選択",
    "answered in words: the model leaned to {tool}, but not clearly enough": "文章で回答: モデルは {tool} に傾いたが、はっきりしなかった",
    "The model could not finish the arguments of the {tool} tool ({reason}); ask again, or use its slash command.":
        "モデルが {tool} ツールの引数を書き終えられませんでした({reason})。もう一度尋ねるか、スラッシュコマンドを使ってください。",
    "the model called this tool (step {step})": "モデルがこのツールを呼び出し(ステップ {step})",
    "the model chose {tool}, but could not finish its arguments": "モデルは {tool} を選んだが、引数を書き終えられなかった",
    "the model asked for a tool it cannot use, so it answered in words": "モデルが使えないツールを求めたため、文章で回答",
    "the model answered in words": "モデルが文章で回答",
    "the answer after the {tool} tool": "{tool} ツールの結果を受けた回答",
    "the answer cites Set-of-Mark regions": "回答が Set-of-Mark の領域を引用",
    "answered in words: this model cannot call tools": "文章で回答: このモデルはツールを呼び出せない",
    "answered in words: the model's server refuses tools": "文章で回答: モデルのサーバーがツールを受け付けない",
    "error": "エラー",
}

# /help: what each command does (the usage is kept as written)
JA_HELP_LINES: dict[str, str] = {
    "/caption": "画像を一文で説明する(BLIP)",
    "/ask": "画像について短く事実を答える(BLIP VQA)",
    "/score": "ラベルのゼロショット採点(CLIP。SigLIP は「siglip:」)",
    "/classify": "主な物体の名前を当てる(チャットモデルが候補を出し CLIP が確かめる)",
    "/mark": "置いたマーカーを画像に描く",
    "/som": "画像の領域に番号を付ける(Set-of-Mark)。そのあと [n] について質問できる",
    "/edit": "画像を編集する(マーカーがあればその領域だけ、--target なら言葉で指した領域だけ)",
    "/remove": "印を付けた物体、または名前で指した物体を消して背景で埋める",
    "/generate": "文章から新しい画像を作る",
    "/sketch": "作業中の画像をスケッチとして絵を作る",
    "/find": "言葉で指したもの(「左の赤いカップ」)の領域を探し、いちばん合う所に印を付ける",
    "/help": "このコマンド一覧を表示する",
}
