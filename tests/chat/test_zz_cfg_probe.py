def test_cfg(assistant):
    from chat.app import create_app
    app = create_app(assistant)
    cfg = app.get_config_file()
    status_id = app.mmchat_components.status._id
    for d in cfg["dependencies"]:
        if status_id in d["outputs"] or status_id in (d.get("show_progress_on") or []):
            print(d["id"], d.get("api_name"), d["show_progress"], d.get("show_progress_on"), [t for t in d["targets"]][:2])
        elif d["show_progress"] != "hidden":
            print("NOT HIDDEN", d["id"], d.get("api_name"), d["show_progress"], d["targets"], d["outputs"][:3])
